# DcisionAI Tenant Security — developer entry points.
# `make local` runs the whole system on this machine; `make test` runs lint + the test suite.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        := .venv
# checkov lives apart: its pinned dependencies would fight the project's.
TOOLS       := .venv-tools
PY          := $(VENV)/bin/python
# Lambda runs python3.12: prefer it for the venv (sam build checks the runtime), fall back to python3.
PYTHON_BOOT ?= $(shell for p in python3.12 $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) python3; do \
                 $$p -c '' >/dev/null 2>&1 && { command -v $$p; break; }; done)
REGION      ?= us-east-1
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= $(REGION)

.PHONY: help setup local test test-fast lint validate build deploy bench clean openapi demo browser

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml layers/common/requirements.txt
	@test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

# The local cloud's IAM evaluator (@cloud-copilot/iam-simulate, run by node): pinned by its lock file.
IAMSIM      := localcloud/iamsim
$(IAMSIM)/node_modules/.installed: $(IAMSIM)/package.json $(IAMSIM)/package-lock.json
	@command -v node >/dev/null || { echo "node (20 or later) is needed by the local cloud's IAM evaluator"; exit 1; }
	cd $(IAMSIM) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

setup: $(VENV)/.installed $(IAMSIM)/node_modules/.installed  ## create .venv (and the IAM evaluator's node modules) with everything the project needs

$(TOOLS)/.installed:
	@test -x $(TOOLS)/bin/python || $(PYTHON_BOOT) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --upgrade pip
	$(TOOLS)/bin/python -m pip install --quiet 'checkov>=3.2,<4'
	@touch $@

local: setup  ## run the local cloud (moto + PostgreSQL + API on :3000)
	$(PY) -m localcloud

demo: setup  ## guided tour on the running local cloud (start `make local` in another terminal first)
	$(PY) -m tenant_security_tools.demo

lint: setup $(TOOLS)/.installed  ## ruff, mypy, cfn-lint (sam validate --lint), bandit, checkov
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	@# the layering of README "Layout" ([tool.importlinter] in pyproject.toml)
	$(VENV)/bin/lint-imports --no-cache
	@# each function is its own `app` module: type-check them one at a time
	@for f in functions/*/app.py; do $(VENV)/bin/mypy --config-file pyproject.toml "$$f" || exit 1; done
	$(VENV)/bin/sam validate --lint --region $(REGION) --template-file template.yaml
	@# no high-severity finding in the code
	$(VENV)/bin/bandit --quiet --recursive layers/common/tenant_security tools functions localcloud --severity-level high
	@# no failed check; every skipped one carries its reason in template.yaml (Metadata.checkov.skip)
	$(TOOLS)/bin/checkov --file template.yaml --framework cloudformation --compact --quiet --skip-download

openapi: setup  ## regenerate functions/docs/openapi.json from the handlers (a test checks it is current)
	$(PY) -m tenant_security_tools.openapi template.yaml > functions/docs/openapi.json.tmp
	mv functions/docs/openapi.json.tmp functions/docs/openapi.json

CHROMIUM ?= /usr/bin/chromium
browser:  ## Debian's chromium for the browser test (apt-get; as root or through sudo)
	@test -x $(CHROMIUM) || { SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }
	@test -x $(CHROMIUM) && $(CHROMIUM) --version 2>/dev/null

build: setup  ## sam build (no container)
	$(VENV)/bin/sam build --region $(REGION) --template-file template.yaml

validate: lint build  ## everything CI checks besides the tests

test: lint build browser  ## lint, sam build, then the whole test suite (under 15 minutes on 2 cores)
	$(PY) -m pytest -n 2 --dist loadfile --durations=30 tests

test-fast: setup browser  ## the tests only
	$(PY) -m pytest -n 2 --dist loadfile --durations=30 tests

bench: setup  ## pytest-benchmark suite (bounded; stops by itself)
	$(PY) -m pytest benchmarks --benchmark-only -p no:xdist -s  # -s: the AWS calls per request/event they print

deploy: build  ## sam deploy with samconfig.toml (ENV=dev|prod)
	$(VENV)/bin/sam deploy --config-env $(or $(ENV),default)

clean:  ## remove build output and local cloud state
	rm -rf .aws-sam .localcloud .pytest_cache .mypy_cache .ruff_cache
