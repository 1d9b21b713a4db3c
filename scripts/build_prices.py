"""Build the bundled Bedrock price table from a pinned public source: `make prices`.

The source is LiteLLM's model price file (MIT, Copyright (c) 2023 Berri AI), read from the PyPI
wheels pinned below. The output, layers/shared/python/budgetkeeper/pricing/prices/bedrock-prices.json,
documents its own format and selection rules and carries LiteLLM's licence. It is deterministic:
rows sorted by (model, region), no timestamps, so a rebuild diffs cleanly.

    .venv/bin/python scripts/build_prices.py [--wheels DIR]

--wheels keeps the downloaded wheels in DIR and reuses them, so a rebuild can run offline.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from budgetkeeper.domain.usage import ServiceTier
from budgetkeeper.pricing.table import (
    ANY_REGION,
    GLOBAL_PREFIX,
    GOVCLOUD_PREFIX,
    TOKEN_KINDS,
    TOKENS_PER_PRICE_UNIT,
    LongContextTier,
    PriceRow,
    Rates,
    resolve_model_id,
)

REPO = Path(__file__).resolve().parent.parent
OUTPUT = REPO / "layers/shared/python/budgetkeeper/pricing/prices/bedrock-prices.json"
PRICE_FILE = "litellm/model_prices_and_context_window_backup.json"
# 1.109.1 ships per-platform wheels (it has a compiled part); one platform means the same bytes everywhere.
WHEEL_PLATFORM = "manylinux_2_28_x86_64"


@dataclass(frozen=True)
class Pin:
    version: str
    # The wheel's PyPI upload date (pip download -v shows it). The zip entries cannot date the
    # file: every one carries the reproducible-build placeholder 1980-01-01.
    released: date
    role: str


PRIMARY = Pin("1.109.1", date(2026, 11, 12), "primary")
# Later releases dropped retired models (Claude 3 Haiku and 3 Sonnet, Cohere Command R and R+).
# The older file supplies models the primary does not list at all, and nothing else: where both
# list a model, the newer prices (often corrected ones) win.
SUPPLEMENT = Pin("1.80.0", date(2025, 11, 16), "models the primary no longer lists")

# Our token kind -> LiteLLM's field, in USD per token.
LITELLM_FIELDS: Mapping[str, str] = {
    "input": "input_cost_per_token",
    "output": "output_cost_per_token",
    "cache_read": "cache_read_input_token_cost",
    "cache_write_5m": "cache_creation_input_token_cost",
    "cache_write_1h": "cache_creation_input_token_cost_above_1hr",
}
# LiteLLM's suffix of a service tier's fields (`input_cost_per_token_priority`); no suffix: standard.
SERVICE_TIER_SUFFIXES: Mapping[ServiceTier, str] = {
    ServiceTier.PRIORITY: "_priority",
    ServiceTier.FLEX: "_flex",
    ServiceTier.BATCH: "_batches",
}
TIER_FIELD = re.compile(r"(?P<field>.+)_above_(?P<thousands>\d+)k_tokens")
# bedrock_mantle is Bedrock's OpenAI-compatible endpoint, with model ids of its own
# (`openai.gpt-oss-120b` there, `openai.gpt-oss-120b-1:0` in the runtime API): not what invocation logs show.
BEDROCK_PROVIDERS = frozenset({"bedrock", "bedrock_converse"})
TOKEN_MODES = frozenset({"chat", "completion", "embedding"})
ROUTE_SEGMENTS = frozenset({"invoke", "converse"})  # LiteLLM routing hints in keys, not part of a Bedrock id
REGION = re.compile(r"[a-z]{2}(-gov)?-[a-z]+-\d")
BOGUS_KEYS: Mapping[str, str] = {
    # Claude 3.7 Sonnet is dated 20250219 (20240620 is Claude 3.5 Sonnet's date), and 3.6 / 18 per
    # 1M tokens is neither model's price: no such model id exists on Bedrock.
    "anthropic.claude-3-7-sonnet-20240620-v1:0": "not a Bedrock model id: Claude 3.7 Sonnet is 20250219",
}

FORMAT = {
    "rows": "one per (model, region, tier), sorted by model, region, then tier",
    "model": "model or inference-profile id as Bedrock logs it, e.g. "
    "anthropic.claude-3-5-sonnet-20240620-v1:0, us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "tier": "the service tier the rates are for: standard, priority, flex or batch (LiteLLM's _priority, "
    "_flex and _batches fields; batch: the rate of batch inference jobs; a tier row has no long-context "
    "rates: LiteLLM gives none)",
    "region": "the source AWS region the prices apply to, or * where the source names none "
    "(LiteLLM's default price, in practice the us-east-1 list price)",
    "input, output, cache_read, cache_write_5m, cache_write_1h": "USD per 1,000,000 tokens as exact decimal "
    "strings; null: the source gives no price for the kind, and pricing charges it at the next kind's rate "
    "(1-hour cache write -> 5-minute cache write -> input; cache read -> input)",
    "long_context": "null, or the rates charged for every token of a request whose prompt "
    "(input + cache read + cache write tokens) exceeds threshold_tokens",
    "derived": "what this builder computed rather than read: cache_write_1h = 2 x input, only for models "
    "LiteLLM gives a 1-hour cache-write price for on another key; in_region_rate: the bare (in-region) id "
    "of a model whose geographic profiles cost more than its global one is priced at the geographic rate, "
    "where LiteLLM gives it the global one (AWS bills in-region and geographic calls of Claude 4.5 and "
    "later 10% above global)",
    "source": "the package, file and key the prices were read from",
    "as_of": "the PyPI release date of that package",
}
RULES = [
    "entries of litellm_provider bedrock and bedrock_converse; bedrock_mantle (the OpenAI-compatible "
    "endpoint, whose model ids differ from the runtime API's) is left out",
    "token-priced modes only (chat, completion, embedding): image, rerank, realtime and guardrail entries "
    "are left out, as are entries without both an input and an output token price (provisioned "
    "commitment terms, per-second video models)",
    "keys bedrock/<region>/<model> give a row for that region; LiteLLM route segments (invoke, converse) "
    "are dropped; other key paths (commitment terms, image sizes, claude_platform) are left out",
    "ids that are not Bedrock model ids (no provider prefix, Vertex-style @ versions) and known-bogus keys "
    "are left out",
    "USD per token is read as a decimal from the JSON text (no float) and multiplied by 1,000,000",
    f"litellm {SUPPLEMENT.version} supplies only models litellm {PRIMARY.version} does not list at all",
]


class Skipped(Exception):
    """Why a LiteLLM entry gives no row."""


def per_million(value: Decimal | int) -> Decimal:
    return Decimal(value) * TOKENS_PER_PRICE_UNIT


def read_rates(entry: Mapping[str, Any], field_suffix: str = "") -> Rates:
    prices = {kind: entry.get(field + field_suffix) for kind, field in LITELLM_FIELDS.items()}
    if prices["input"] is None or prices["output"] is None:
        raise Skipped("no input and output token price")
    return Rates(**{kind: None if price is None else per_million(price) for kind, price in prices.items()})


def read_long_context(entry: Mapping[str, Any]) -> LongContextTier | None:
    thresholds = {
        int(match["thousands"])
        for name in entry
        if (match := TIER_FIELD.fullmatch(name)) and match["field"] in LITELLM_FIELDS.values()
    }
    if not thresholds:
        return None
    if len(thresholds) > 1:
        raise ValueError(f"more than one long-context threshold: {sorted(thresholds)}")
    thousands = thresholds.pop()
    return LongContextTier(thousands * 1000, read_rates(entry, f"_above_{thousands}k_tokens"))


def model_and_region(key: str, entry: Mapping[str, Any]) -> tuple[str, str]:
    """The Bedrock model id and region a LiteLLM entry prices; Skipped if it is no on-demand token price."""
    if entry.get("litellm_provider") not in BEDROCK_PROVIDERS:
        raise Skipped(f"provider {entry.get('litellm_provider')}")
    if entry.get("mode") not in TOKEN_MODES:
        raise Skipped(f"mode {entry.get('mode')}")
    if key in BOGUS_KEYS:
        raise Skipped(BOGUS_KEYS[key])
    *path, model = key.removeprefix("bedrock/").split("/")
    path = [segment for segment in path if segment not in ROUTE_SEGMENTS]
    if len(path) > 1 or (path and not REGION.fullmatch(path[0])):
        raise Skipped("key path other than [region/]model")
    if "." not in model or "@" in model:
        raise Skipped("not a Bedrock model id")
    return model, path[0] if path else ANY_REGION


def bedrock_entries(prices: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {
        key: entry
        for key, entry in prices.items()
        if isinstance(entry, dict) and str(entry.get("litellm_provider", "")).startswith("bedrock")
    }


def listed_models(entries: Mapping[str, Any]) -> set[str]:
    """Base model ids an entry exists for, priced per token or not."""
    return {resolve_model_id(key.rsplit("/", 1)[-1]).base_model for key in entries}


def service_tier_rows(pin: Pin, key: str, entry: Mapping[str, Any], standard: PriceRow) -> Iterator[PriceRow]:
    """Rows of the priority, flex and batch tiers an entry prices both input and output tokens for."""
    for tier, suffix in SERVICE_TIER_SUFFIXES.items():
        try:
            rates = read_rates(entry, suffix)
        except Skipped:
            continue
        yield replace(
            standard, rates=rates, long_context=None, tier=tier, source=f"{standard.source} {suffix}"
        )


def read_rows(
    pin: Pin, entries: Mapping[str, Any], skipped: Counter[str]
) -> dict[tuple[str, str, ServiceTier], PriceRow]:
    rows: dict[tuple[str, str, ServiceTier], PriceRow] = {}
    # Shortest key first: `us.x` before its aliases `bedrock/us.x` and `bedrock/invoke/us.x`.
    for key in sorted(entries, key=lambda key: (len(key), key)):
        entry = entries[key]
        try:
            model, region = model_and_region(key, entry)
            rates = read_rates(entry)
        except Skipped as reason:
            skipped[f"{pin.version}: {reason}"] += 1
            continue
        row = PriceRow(
            model=model,
            region=region,
            rates=rates,
            long_context=read_long_context(entry),
            source=f"litellm=={pin.version} {PRICE_FILE} [{key}]",
            as_of=pin.released,
        )
        if tier := row.long_context:
            missing = {kind for kind in TOKEN_KINDS if getattr(rates, kind) is None}
            if missing != {kind for kind in TOKEN_KINDS if getattr(tier.rates, kind) is None}:
                raise ValueError(f"{key}: long-context tier prices other token kinds than the standard rates")
        for read in (row, *service_tier_rows(pin, key, entry, row)):
            alias_of = rows.setdefault(read.key, read)
            if alias_of is not read:
                if (alias_of.rates, alias_of.long_context) != (read.rates, read.long_context):
                    raise ValueError(f"{key} and {alias_of.source} price {model} in {region} differently")
                skipped[f"{pin.version}: alias of a key already read ({read.tier})"] += 1
    return rows


def with_regional_in_region_rates(rows: list[PriceRow]) -> list[PriceRow]:
    """The bare id of a model whose geo profiles agree on a rate above its global one, at that rate.

    AWS bills in-region (bare id) and geographic cross-region calls of Claude Sonnet 4.5, Haiku 4.5,
    Opus 4.5 and later 10% above global ones; LiteLLM prices their bare ids at the global rate.
    Decided per (model, tier) from the rows themselves, so a model the rule does not fit keeps its row.
    """
    by_key = {row.key: row for row in rows}
    geo_rates: dict[tuple[str, ServiceTier], set[tuple[Rates, LongContextTier | None]]] = {}
    for row in rows:
        ref = resolve_model_id(row.model)
        if row.region == ANY_REGION and ref.profile_prefix not in (None, GLOBAL_PREFIX, GOVCLOUD_PREFIX):
            geo_rates.setdefault((ref.base_model, row.tier), set()).add((row.rates, row.long_context))
    completed = []
    for row in rows:
        global_row = by_key.get((f"{GLOBAL_PREFIX}.{row.model}", row.region, row.tier))
        regional = geo_rates.get((row.model, row.tier), set())
        if (
            resolve_model_id(row.model).profile_prefix is None
            and global_row is not None
            and len(regional) == 1
            and (row.rates, row.long_context) == (global_row.rates, global_row.long_context)
            and (geo := next(iter(regional)))[0].input > global_row.rates.input
        ):
            row = replace(row, rates=geo[0], long_context=geo[1], derived=(*row.derived, "in_region_rate"))
        completed.append(row)
    return completed


def with_one_hour_writes(rows: list[PriceRow]) -> list[PriceRow]:
    """Price 1-hour cache writes at 2 x input on rows of models LiteLLM gives a 1-hour price for elsewhere."""
    offering = {
        resolve_model_id(row.model).base_model for row in rows if row.rates.cache_write_1h is not None
    }

    def doubled_input(rates: Rates) -> Rates:
        return replace(rates, cache_write_1h=rates.input * 2)

    completed = []
    for row in rows:
        rates, tier = row.rates, row.long_context
        if (
            rates.cache_write_1h is None
            and rates.cache_write_5m is not None
            and resolve_model_id(row.model).base_model in offering
        ):
            # read_rows checked that a tier lacks exactly the kinds its row lacks.
            row = replace(
                row,
                rates=doubled_input(rates),
                long_context=None if tier is None else replace(tier, rates=doubled_input(tier.rates)),
                derived=("cache_write_1h",),
            )
        completed.append(row)
    return completed


def wheel_for(pin: Pin, wheel_dir: Path) -> Path:
    pattern = f"litellm-{pin.version}-*.whl"
    if not any(wheel_dir.glob(pattern)):
        subprocess.run(
            [
                *(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"),
                *("--platform", WHEEL_PLATFORM, "--python-version", "3.12", "--dest", str(wheel_dir)),
                f"litellm=={pin.version}",
            ],
            check=True,
        )
    return sorted(wheel_dir.glob(pattern))[0]


def read_wheel(wheel: Path) -> tuple[bytes, str]:
    """The price file's bytes and the licence text of a LiteLLM wheel."""
    with zipfile.ZipFile(wheel) as archive:
        licence = next(
            name for name in archive.namelist() if ".dist-info/" in name and name.endswith("/LICENSE")
        )
        return archive.read(PRICE_FILE), archive.read(licence).decode("utf-8")


def build(wheel_dir: Path) -> tuple[dict[str, Any], Counter[str]]:
    skipped: Counter[str] = Counter()
    sources = []
    entries = []
    tables = []
    licence_text = ""
    for pin in (PRIMARY, SUPPLEMENT):
        wheel = wheel_for(pin, wheel_dir)
        price_file, licence = read_wheel(wheel)
        licence_text = licence_text or licence
        # parse_float=Decimal keeps each price exactly as written in the file: no float ever exists.
        entries.append(bedrock_entries(json.loads(price_file, parse_float=Decimal)))
        tables.append(read_rows(pin, entries[-1], skipped))
        sources.append(
            {
                "package": f"litellm=={pin.version}",
                "wheel": wheel.name,
                "file": PRICE_FILE,
                "sha256": hashlib.sha256(price_file).hexdigest(),
                "released": pin.released.isoformat(),
                "role": pin.role,
            }
        )
    primary, supplement = tables
    primary_models = listed_models(entries[0])
    rows = list(primary.values())
    for row in supplement.values():
        if resolve_model_id(row.model).base_model in primary_models:
            skipped[f"{SUPPLEMENT.version}: model listed by {PRIMARY.version}"] += 1
        else:
            rows.append(row)
    rows = sorted(
        with_regional_in_region_rates(with_one_hour_writes(rows)),
        key=lambda row: (row.model, row.region, row.tier),
    )
    document = {
        "version": f"litellm-{PRIMARY.version}",
        "source": f"LiteLLM's model price file {PRICE_FILE}, from the PyPI wheels litellm=={PRIMARY.version} "
        f"and litellm=={SUPPLEMENT.version} (https://github.com/BerriAI/litellm)",
        "sources": sources,
        "license": "MIT",
        "attribution": "Prices from LiteLLM, Copyright (c) 2023 Berri AI, used under the MIT License "
        "in license_text.",
        "license_text": licence_text,
        "generated_by": "scripts/build_prices.py",
        "unit": "USD per 1,000,000 tokens",
        "format": FORMAT,
        "rules": RULES,
        "rows": [row.to_dict() for row in rows],
    }
    return document, skipped


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheels", type=Path, help="keep and reuse the downloaded wheels in this directory")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        wheel_dir = args.wheels or Path(scratch)
        wheel_dir.mkdir(parents=True, exist_ok=True)
        document, skipped = build(wheel_dir)
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(
        f"wrote {len(document['rows'])} rows to {OUTPUT.relative_to(REPO)} ({OUTPUT.stat().st_size:,} bytes)"
    )
    for reason, count in sorted(skipped.items()):
        print(f"  left out {count:4} entries: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
