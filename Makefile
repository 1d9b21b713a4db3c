# The two commands a new user runs: `make demo` and `make test`. Everything installs into .venv.
SHELL := /bin/bash
# The venv uses the Lambda runtime's Python when the machine has it (pyenv's 3.12), else python3.
PYTHON_FOR_VENV ?= $(or $(firstword $(wildcard /root/.pyenv/versions/3.12*/bin/python3.12)),$(shell python3.12 --version >/dev/null 2>&1 && echo python3.12),python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# sam build needs an interpreter equal to the Lambda runtime (python3.12) on PATH.
PY312_DIR := $(patsubst %/,%,$(dir $(firstword $(wildcard /root/.pyenv/versions/3.12*/bin/python3.12))))
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: help venv test test-clock check-install lint build check-build unit demo bench prices asl fmt clean

help:
	@echo "make demo    run a day of Bedrock traffic through the stack on moto and tell what happened"
	@echo "make test    lint, validate and build the SAM template, then run every test"
	@echo "make test-clock  the time-sensitive tests again, with the machine's clock at a month end and a DST change"
	@echo "make bench   print throughput and cost figures"
	@echo "make prices  rebuild the bundled price table from its pinned public source"
	@echo "make asl     write statemachines/*.asl.json from their *.source.yaml (edit the source, not the JSON)"

$(STAMP): requirements-dev.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON_FOR_VENV) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	@# The development kit (devkit/: harness, demo) is importable in this venv only, never installed.
	$(BIN)/python -c "import pathlib, site; pathlib.Path(site.getsitepackages()[0], 'budgetkeeper-devkit.pth').write_text('$(CURDIR)\n')"
	@touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/cfn-lint template.yaml
	$(BIN)/sam validate --lint --template-file template.yaml

build: $(STAMP)
	PATH="$(PY312_DIR):$$PATH" $(BIN)/sam build --template-file template.yaml --parallel --cached

check-build: build
	$(BIN)/python scripts/check_build.py

unit: $(STAMP)
	$(BIN)/pytest -q

test: lint check-build unit

# Tests whose answers depend on what time it is: the suite must not care what day the machine says.
CLOCK_TESTS := tests/integration tests/unit/test_windows.py tests/unit/test_test_dates.py
# Three minutes before midnight UTC at a month end; two before the European summer-time change.
CLOCK_STARTS := "2027-02-28 23:57:00" "2027-03-28 00:58:00"

test-clock: $(STAMP)
	@for start in $(CLOCK_STARTS); do \
	  $(BIN)/python scripts/under_faketime.py "$$start" -- $(BIN)/pytest -q -p no:cacheprovider $(CLOCK_TESTS) || exit 1; \
	done

# `pip install .` in a fresh venv gives a working budgetkeeper without moto or the dev kit.
check-install:
	bash scripts/check_install.sh $(PYTHON_FOR_VENV)

demo: $(STAMP)
	$(BIN)/python -m devkit.demo

bench: $(STAMP)
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

prices: $(STAMP)
	$(BIN)/python scripts/build_prices.py

asl: $(STAMP)
	$(BIN)/python scripts/build_asl.py

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf .aws-sam .pytest_cache .ruff_cache
