# leadbridge: make help
SHELL := /bin/bash
PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13) $(shell command -v python3.13 2>/dev/null) python3)
VENV := .venv
SAM_VENV := .venv-sam
CHECKOV_VENV := .venv-checkov
PY := $(VENV)/bin/python
export PYTHONPATH := layers/leadbridge:local
CRM ?= amocrm
FILES ?=
CRM_DATA ?=

.PHONY: help venv sam-venv lock demo replay api test test-fault lint format typecheck template build schema bench bench-scale bench-smoke redrive backfill reindex clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

# The virtualenvs install the locks (every version and hash of the tree), never the loose requirements.
$(VENV)/.installed: requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --require-hashes -r requirements.lock
	touch $@

$(SAM_VENV)/.installed: requirements-sam.lock
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install -q --require-hashes -r requirements-sam.lock
	touch $@

$(CHECKOV_VENV)/.installed: requirements-checkov.lock
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q --require-hashes -r requirements-checkov.lock
	touch $@

venv: $(VENV)/.installed ## Create the development virtualenv (Python 3.13)

sam-venv: $(SAM_VENV)/.installed ## Create the SAM CLI's own virtualenv

UV_COMPILE = $(VENV)/bin/uv pip compile -q --universal --generate-hashes --python-version 3.13
lock: venv ## Re-resolve the locks (layer, tools, SAM CLI) after changing a requirements file
	$(UV_COMPILE) layers/leadbridge/requirements.txt -o layers/leadbridge/requirements.lock
	$(UV_COMPILE) -c layers/leadbridge/requirements.lock requirements.txt -o requirements.lock
	$(UV_COMPILE) requirements-sam.txt -o requirements-sam.lock
	$(UV_COMPILE) requirements-checkov.txt -o requirements-checkov.lock

demo: venv ## Run the pipeline on the local stack with the samples in events/ and print the leads
	$(PY) -m leadbridge_local.demo

replay: venv ## Replay captured webhooks: make replay CRM=amocrm FILES="a.form b.json" [CRM_DATA=dir] [PICKERS=out.json]
	@test -n "$(FILES)" || (echo 'usage: make replay CRM=amocrm|bitrix24 FILES="<paths>" [CRM_DATA=<dir>]' >&2; exit 2)
	@$(PY) -m leadbridge_local.replay --crm $(CRM) $(if $(CRM_DATA),--crm-data $(CRM_DATA)) $(if $(PICKERS),--pickers $(PICKERS)) $(FILES)

api: venv ## Serve the integrations API with uvicorn on the local stack (API_PORT, default 8000)
	$(PY) -m leadbridge_local.api_server

test: venv sam-venv ## Run the test suite (unit, integration over local AWS and fake CRMs, property tests)
	$(PY) -m pytest

lint: venv ## ruff lint and format check, and the package's import rule (layers only look down)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m leadbridge_local.import_rule

format: venv ## Apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

typecheck: venv ## mypy, strict, on the layer, the functions and the local tooling
	$(VENV)/bin/mypy

template: venv sam-venv $(CHECKOV_VENV)/.installed ## cfn-lint, sam validate --lint, then cfn-lint and checkov on what CloudFormation receives
	$(VENV)/bin/cfn-lint template.yaml
	$(SAM_VENV)/bin/sam validate --lint
	@mkdir -p out
	$(SAM_VENV)/bin/python -m leadbridge_local.sam_transform > out/template.transformed.json
	$(VENV)/bin/cfn-lint out/template.transformed.json
	@# Every finding is fixed or skipped in the resource's Metadata with its reason: a new one fails here.
	$(CHECKOV_VENV)/bin/checkov -f out/template.transformed.json --framework cloudformation --compact --quiet --skip-download

build: sam-venv ## sam build (the layer and every function)
	PATH="$(abspath $(dir $(PYTHON))):$$PATH" $(SAM_VENV)/bin/sam build

schema: venv ## Regenerate the committed lead JSON Schema from the model
	$(PY) -m leadbridge_local.schema

redrive: venv ## Move a DLQ back to its queue: make redrive STACK=<stack> [QUEUE=inbox|leads] (AWS credentials from the environment)
	@test -n "$(STACK)$(DLQ_URL)" || (echo 'usage: make redrive STACK=<stack> [QUEUE=inbox|leads]  or  DLQ_URL=... QUEUE_URL=...' >&2; exit 2)
	$(PY) -m leadbridge.flows.recovery.redrive $(if $(STACK),--stack $(STACK) --queue $(or $(QUEUE),inbox),--dlq-url $(DLQ_URL) --queue-url $(QUEUE_URL))

backfill: venv ## Import a past period: make backfill STACK=<stack> INTEGRATION=<id> FROM=<iso> TO=<iso> (no STACK: local demo)
ifeq ($(STACK),)
	$(PY) -m leadbridge_local.backfill_demo
else
	@test -n "$(INTEGRATION)" || (echo 'usage: make backfill STACK=<stack> INTEGRATION=<id> FROM=<iso> TO=<iso>  (or STATUS=1 / CANCEL=1)' >&2; exit 2)
	$(PY) -m leadbridge.flows.recovery.backfill.cli --stack $(STACK) --integration $(INTEGRATION) $(if $(FROM),--from $(FROM)) $(if $(TO),--to $(TO)) $(if $(STATUS),--status) $(if $(CANCEL),--cancel)
endif

bench: venv build ## Benchmarks (not part of CI; on the built artifacts); writes bench/results.json
	$(PY) bench/run.py

bench-scale: venv ## Scheduled work for 2,000 integrations on the local runner (not in CI); writes bench/scale-results.json
	$(PY) bench/scale.py

bench-smoke: venv build ## Every benchmark end to end at tiny sizes (in CI): fails when one cannot run or lacks a figure
	$(PY) bench/smoke.py

reindex: venv ## Once, after upgrading an older stack: put its integrations in the scheduled-work index (STACK=<stack>)
	@test -n "$(STACK)" || (echo 'usage: make reindex STACK=<stack>  (AWS credentials from the environment)' >&2; exit 2)
	$(PY) -m leadbridge.flows.scheduled.reindex --stack $(STACK)

clean: ## Remove build output and caches
	rm -rf .aws-sam out .pytest_cache .mypy_cache .ruff_cache .hypothesis
