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
if "$venv/bin/python" -c "import moto" 2>/dev/null; then
  echo "check_install: moto was installed by 'pip install .'; the product must not need it" >&2
  exit 1
fi
if "$venv/bin/python" -c "import devkit" 2>/dev/null; then
  echo "check_install: the development kit was installed by 'pip install .'" >&2
  exit 1
fi
"$venv/bin/budgetkeeper" --help >/dev/null
"$venv/bin/budgetkeeper" price --model amazon.nova-pro-v1:0 --region us-east-1 --input 1000 --output 200
"$venv/bin/budgetkeeper" meter events/invocation_logs/ --group-by principal,model --max-rows 5
echo "check_install: pip install . gives a working budgetkeeper without moto"
