"""Write each statemachines/<name>.asl.json from its <name>.source.yaml.

The source says each Retry/Catch policy once, with YAML anchors. Step Functions gets plain JSON:
`sam package` uploads the file named by DefinitionUri as it is, so nothing on the deploy path would
resolve the anchors. tests/unit/template/test_state_machines.py checks the committed JSON is what this writes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

STATEMACHINES = Path(__file__).resolve().parents[1] / "statemachines"
SHARED_KEY = "x-shared"
# A merged shape (`<<: *lambda_task`) comes first in a mapping; write the fields in the usual ASL order.
# Fields not listed keep their source order after these.
FIELD_ORDER = [
    "Comment",
    "Type",
    "Resource",
    "Parameters",
    "InputPath",
    "SecondsPath",
    "TimestampPath",
    "OutputPath",
    "ResultPath",
    "Retry",
    "Catch",
    "Choices",
    "Default",
    "Error",
    "Cause",
    "ErrorPath",
    "CausePath",
    "Next",
    "End",
]


def _field_rank(field: str) -> int:
    return FIELD_ORDER.index(field) if field in FIELD_ORDER else len(FIELD_ORDER)


def render(source: Path) -> str:
    """The ASL JSON text for one source file."""
    definition = yaml.safe_load(source.read_text())
    del definition[SHARED_KEY]
    definition["States"] = {
        name: {field: state[field] for field in sorted(state, key=_field_rank)}
        for name, state in definition["States"].items()
    }
    return json.dumps(definition, indent=2) + "\n"


def target_of(source: Path) -> Path:
    return source.with_name(source.name.removesuffix(".source.yaml") + ".asl.json")


def sources() -> list[Path]:
    return sorted(STATEMACHINES.glob("*.source.yaml"))


def main() -> int:
    for source in sources():
        target_of(source).write_text(render(source))
        print(f"wrote {target_of(source).relative_to(STATEMACHINES.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
