#!/usr/bin/env bash
# `pip install .` gives a working `budgetkeeper` without the development kit: no moto, no cfn-lint,
# no harness. Builds a fresh venv from the project alone, then runs the offline commands in it.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${1:-python3}"
venv="$(mktemp -d)/venv"
trap 'rm -rf "$(dirname "$venv")"' EXIT
"$python" -m venv "$venv"
# setuptools builds in ./build/lib and keeps files of modules since moved: start it clean.
rm -rf build/lib build/bdist.*
"$venv/bin/pip" install --quiet --disable-pip-version-check .
# Asked from another folder, so that this checkout's own folders are not on the import path.
for kit in moto devkit cfnlint; do
  if (cd "$(dirname "$venv")" && "$venv/bin/python" -c "import $kit" 2>/dev/null); then
    echo "check_install: 'pip install .' installed $kit; the product must not need it" >&2
    exit 1
  fi
done
"$venv/bin/budgetkeeper" --help >/dev/null
"$venv/bin/budgetkeeper" price --model amazon.nova-pro-v1:0 --region us-east-1 --input 1000 --output 200
"$venv/bin/budgetkeeper" meter events/invocation_logs/ --group-by principal,model
# The HTML report's template is package data: it must be installed with the command.
(cd "$(dirname "$venv")" && "$venv/bin/python" -c \
  "import budgetkeeper_cli.reports.html as h; h._ENVIRONMENT.get_template('report.html.j2')")
# The console's templates are package data too, and its command is there.
"$venv/bin/budgetkeeper" console --help >/dev/null
(cd "$(dirname "$venv")" && "$venv/bin/python" -c "
from budgetkeeper_cli.console.app import TABS, _ConsoleFlask
app = _ConsoleFlask('budgetkeeper_cli', template_folder='templates')
for name in ['console/base.html.j2', 'console/confirm.html.j2', 'console/run.html.j2', 'console/scope.html.j2'] + [f'console/{tab}.html.j2' for tab, _ in TABS]:
    app.jinja_env.get_template(name)
")
# The notice templates ship as package data: every language renders from the installed package.
(cd "$(dirname "$venv")" && POWERTOOLS_SERVICE_NAME=check "$venv/bin/python" - <<'PY'
from budgetkeeper.notify import NotificationEvent
from budgetkeeper.notify.notices import notice_for
from budgetkeeper.notify.render import Renderer

renderer = Renderer()
assert renderer.languages() == ("en", "es"), renderer.languages()
event = NotificationEvent("suspended", "user:alice", "daily", "d", "2", "1", "200", None, "x", None, None, "t")
notice = notice_for(event)
for language in renderer.languages():
    assert "user:alice" in renderer.render(notice.template, language, notice.context).html
PY
)
echo "check_install: pip install . gives a working budgetkeeper without moto"
