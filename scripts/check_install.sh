#!/usr/bin/env bash
# `pip install .` gives a working `budgetkeeper` without the development kit: no moto, no cfn-lint,
# no harness. Builds a fresh venv from the project alone, then runs the offline commands in it.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${1:-python3}"
venv="$(mktemp -d)/venv"
trap 'rm -rf "$(dirname "$venv")"' EXIT
"$python" -m venv "$venv"
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
  "import budgetkeeper_cli.html_report as h; h._ENVIRONMENT.get_template('report.html.j2')")
echo "check_install: pip install . gives a working budgetkeeper without moto"
