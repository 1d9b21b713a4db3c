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

.PHONY: help venv iam-evaluator console demo-org test test-clock test-scale test-explore explore check-install checkov checkov-baseline lint build check-build unit demo bench prices asl fmt clean

help:
	@echo "make demo    run a day of Bedrock traffic through the stack on moto and tell what happened"
	@echo "make demo-org organization mode: one person over budget across two accounts, denied in both"
	@echo "make test    lint, validate and build the SAM template, then run every test"
	@echo "make test-clock  the time-sensitive tests again, with the machine's clock at a month end and a DST change"
	@echo "make test-scale  the crossings test at 10,000 budgets, 1,000 crossing in one minute; a burst of 100 denies (about 6 minutes)"
	@echo "make test-explore  the model-based enforcement test longer: a fixed seed, then a fresh one (CI)"
	@echo "make explore  the model-based enforcement test until it fails or Ctrl-C (SEED=n to choose the seed)"
	@echo "make checkov  scan template.yaml and templates/*.yaml with checkov (own venv); a finding not in .checkov.baseline fails"
	@echo "make console the demo's day, then the operators' web console on it (CONSOLE_PORT, default 8765)"
	@echo "make bench   print throughput and cost figures"
	@echo "make prices  rebuild the bundled price table from its pinned public source, cross-check it with genai-prices"
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

# The tests' IAM evaluator (tests/iam_eval.py): @cloud-copilot/iam-simulate from npm, exact versions
# from the lock file, test-only (AGPL-3.0, never shipped). Without npm, the tests that need it skip
# and say why; under CI=true that fails (tests/conftest.py).
IAM_EVALUATOR := tests/iam
IAM_EVALUATOR_STAMP := $(IAM_EVALUATOR)/node_modules/.installed

$(IAM_EVALUATOR_STAMP): $(IAM_EVALUATOR)/package.json $(IAM_EVALUATOR)/package-lock.json
	@if command -v npm >/dev/null; then \
	  cd $(IAM_EVALUATOR) && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else \
	  echo "npm not found: the IAM evaluator tests will skip (apt-get install nodejs npm)"; \
	fi

iam-evaluator: $(IAM_EVALUATOR_STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@# The import contract (pyproject.toml, [tool.importlinter]): layers, one direction, no cycles.
	PYTHONPATH=.:layers/shared/python:cli $(BIN)/lint-imports
	@# Types (pyproject.toml, [tool.mypy]): the layer, the handlers and the CLI.
	$(BIN)/mypy
	$(BIN)/cfn-lint template.yaml templates/regional-collector.yaml templates/member-account.yaml
	$(BIN)/sam validate --lint --template-file template.yaml

build: $(STAMP)
	PATH="$(PY312_DIR):$$PATH" $(BIN)/sam build --template-file template.yaml --parallel --cached

check-build: build
	$(BIN)/python scripts/check_build.py

# Every core (pytest-xdist); worksteal evens out the few long tests (the demo, the workflows on moto).
PYTEST_PARALLEL := -n auto --dist worksteal

# The 15 longest tests are printed: where `make test`'s 10 minutes go.
unit: $(STAMP) $(IAM_EVALUATOR_STAMP)
	$(BIN)/pytest -q $(PYTEST_PARALLEL) --durations=15

test: lint check-build unit

# Tests whose answers depend on what time it is: the suite must not care what day the machine says.
# In-process tests stand on the pinned clock (tests/conftest.py), which is never the machine's date,
# so a read of the machine's clock in the product fails `make test` already; what only a moved
# machine clock shows is where moto, a subprocess or a test's own arithmetic reads it.
CLOCK_TESTS := tests/integration tests/unit/core/test_windows.py tests/unit/repo/test_test_dates.py
# A daylight-saving change moves only what is read in a time zone: windows in a budget's zone, and
# moments formatted for people (notices, the CLI, the console's audit). Those run at the second start.
ZONE_TESTS := tests/unit/core/test_windows.py tests/unit/notify tests/integration/test_calendar_edges.py \
  tests/integration/test_cli.py tests/integration/test_config_command.py \
  tests/integration/test_enforcement_workflow.py tests/integration/test_notifier.py \
  tests/integration/test_tunables.py tests/integration/test_budget_monitor.py
CLOCK_PYTEST := $(BIN)/pytest -q -p no:cacheprovider $(PYTEST_PARALLEL) -m "not browser"
# Three minutes before midnight UTC at a month end (everything); two before the European
# summer-time change (what reads a zone).
MONTH_END_START := "2027-02-28 23:57:00"
DST_START := "2027-03-28 00:58:00"

test-clock: $(STAMP) $(IAM_EVALUATOR_STAMP)
	$(BIN)/python scripts/under_faketime.py $(MONTH_END_START) -- $(CLOCK_PYTEST) $(CLOCK_TESTS)
	$(BIN)/python scripts/under_faketime.py $(DST_START) -- $(CLOCK_PYTEST) $(ZONE_TESTS)

# The crossings test at the issue's size: 10,000 budgets, 1,000 over their limit in one minute; and a
# hundred runs reaching ApplyDenies at once on moto (make test runs twenty).
test-scale: $(STAMP)
	CROSSINGS_AT_SCALE=10000:1000 $(BIN)/pytest -q tests/integration/test_crossings_at_scale.py
	DENY_BURST=100 $(BIN)/pytest -q tests/reliability/test_deny_burst.py

# The model-based enforcement test (tests/model): `make test` runs it briefly and derandomized; here
# it runs longer, from a fixed seed and then from a fresh one it prints (CI, at most 5 minutes on 2
# cores: each run's two explorations side by side, a failure's shrinking cut at a minute);
# `make explore` runs until a failure or Ctrl-C. A failure prints the shortest sequence found and
# the seed: `make explore SEED=<seed>` runs from it again (and shrinks for up to 5 minutes).
EXPLORE_FIXED_SEED := 26
EXPLORE_BUDGET := MODEL_EXAMPLES=15 MODEL_STEPS=12 MODEL_SHRINK_SECONDS=60
MODEL_PYTEST := $(BIN)/pytest -q -p no:cacheprovider -n 2 -m model tests/model

test-explore: $(STAMP)
	MODEL_SEED=$(EXPLORE_FIXED_SEED) $(EXPLORE_BUDGET) $(MODEL_PYTEST) --hypothesis-seed=$(EXPLORE_FIXED_SEED)
	@seed=$$(od -An -N4 -tu4 /dev/urandom | tr -d ' '); \
	  echo "model exploration from a fresh seed: $$seed (again: make explore SEED=$$seed)"; \
	  MODEL_SEED=$$seed $(EXPLORE_BUDGET) $(MODEL_PYTEST) --hypothesis-seed=$$seed

explore: $(STAMP)
	@seed=$${SEED:-$$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}; \
	  echo "model exploration from seed $$seed, until a failure or Ctrl-C"; \
	  MODEL_SEED=$$seed MODEL_EXAMPLES=1000000 MODEL_STEPS=$${MODEL_STEPS:-25} $(MODEL_PYTEST) --hypothesis-seed=$$seed

# `pip install .` in a fresh venv gives a working budgetkeeper without moto or the dev kit.
check-install:
	bash scripts/check_install.sh $(PYTHON_FOR_VENV)

# checkov pins many packages of its own: it gets its own venv, and one pinned version.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)
# --skip-download: no call to Prisma Cloud for guideline links (runs offline).
CHECKOV_ARGS := --framework cloudformation --compact --quiet --skip-download

$(CHECKOV_STAMP):
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON_FOR_VENV) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check checkov==$(CHECKOV_VERSION)
	@touch $(CHECKOV_STAMP)

# .checkov.baseline holds the findings accepted, per resource, and why:
# - CKV_AWS_19 (ArchiveBucket SSE): a false positive, checkov cannot read the Fn::If on KmsKeyArn;
#   tests/unit/template/test_template_security.py checks the encryption of both branches.
# - CKV_AWS_18 (ArchiveBucket access logging): it would need a second bucket; CloudTrail S3 data
#   events are the way to audit reads of the archive.
# - CKV_AWS_28 (DedupeTable, IdempotencyTable PITR): TTL'd keys worthless after a day.
# - CKV_AWS_158 (log groups not KMS-encrypted): CloudWatch Logs encrypts at rest; a KMS key there
#   needs a key policy for the logs service principal, which KmsKeyArn does not ask for (the member
#   stack's InvocationLogGroup too: a StackSet would need that key in every member account).
# - CKV_AWS_173 (Lambda environment not KMS-encrypted): it holds names and ARNs, no secret; Lambda
#   encrypts it at rest with an AWS managed key.
# - CKV_AWS_116 (no DLQ): Firehose and Step Functions invoke synchronously and retry. The schedules
#   invoke asynchronously, and a DLQ would keep only the schedule's empty event: the next run redoes
#   a failed one (the monitor's next sweep; the reconciler checks its last 3 days again the next
#   day; the compactor's next run), and PriceRefreshFunction's, ReconcilerFunction's and
#   UsageCompactorFunction's errors are in FaultsAlarm. The
#   NotifierFunction, which SNS invokes asynchronously, has one (NotifierFailuresQueue).
# - CKV_AWS_117 (not in a VPC): the functions call only AWS APIs; a VPC would add NAT or endpoints.
# - CKV_AWS_115 (no reserved concurrency): their callers bound them (Firehose, Step Functions, a
#   schedule, SNS: one NotifierFunction run per event, where a cap would only delay notices;
#   UnloggedSpendFunction: one run per batch job's creation or end, and its schedule);
#   DenyFunction has it (1), for another reason, and UsageCompactorFunction (1: one fold at a time).
# - CKV_AWS_27 (the regional collector's queues): a false positive, they are encrypted with
#   SqsManagedSseEnabled, which this checkov version does not read (it looks for KmsMasterKeyId).
# The templates checkov scans: the stack, the regional collector, and the member stack of
# organization mode.
CHECKOV_TEMPLATES := template.yaml templates/regional-collector.yaml templates/member-account.yaml

checkov: $(CHECKOV_STAMP)
	$(CHECKOV_VENV)/bin/checkov $(addprefix -f ,$(CHECKOV_TEMPLATES)) $(CHECKOV_ARGS) --baseline .checkov.baseline

# Rewrite the baseline from the template as it is now (review the diff: every entry needs a reason
# above). --create-baseline wants a folder, so the templates are scanned alone in a temporary one.
checkov-baseline: $(CHECKOV_STAMP)
	@tmp=$$(mktemp -d) && cp --parents $(CHECKOV_TEMPLATES) $$tmp/ && \
	  { $(CHECKOV_VENV)/bin/checkov -d $$tmp $(CHECKOV_ARGS) --create-baseline >/dev/null || true; } && \
	  cp $$tmp/.checkov.baseline .checkov.baseline && rm -rf $$tmp

demo: $(STAMP)
	$(BIN)/python -m devkit.demo

# Organization mode: two member accounts, one person over budget across both, denied in both.
demo-org: $(STAMP)
	$(BIN)/python -m devkit.demo_org

# The demo's day on moto, then `budgetkeeper console` on it (the workflow still running) until Ctrl-C.
CONSOLE_PORT ?= 8765
console: $(STAMP)
	$(BIN)/python -m devkit.demo --console $(CONSOLE_PORT)

# Each script prints the command that produced its figures. bench_soak's default (1,000,000 records)
# takes about 6 minutes, bench_meter_archive's (1 GB) about 2: not for `make test`. The calculator
# runs again at 210 principals, at 30,000 calls an hour and with the buffer interval at 0 s.
bench: $(STAMP)
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done
	@echo "== bench/bench_calculator.py --population 10 (210 principals at a million calls an hour)"
	@$(BIN)/python bench/bench_calculator.py --population 10
	@echo "== bench/bench_calculator.py --rate 30000 (500 calls a minute: the interval closes each batch)"
	@$(BIN)/python bench/bench_calculator.py --rate 30000
	@echo "== bench/bench_calculator.py --batch 25 (Firehose processor buffer interval 0 s)"
	@$(BIN)/python bench/bench_calculator.py --batch 25
	@echo "== bench/cost_model.py (the whole monthly bill at four traffic levels and idle)"
	@$(BIN)/python bench/cost_model.py

prices: $(STAMP)
	$(BIN)/python scripts/build_prices.py
	$(BIN)/python scripts/cross_check_prices.py

asl: $(STAMP)
	$(BIN)/python scripts/build_asl.py

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf .aws-sam .pytest_cache .ruff_cache
