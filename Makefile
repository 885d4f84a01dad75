# The two commands a newcomer needs: `make demo` and `make test`.
# Everything else (lint, bench, build, deploy) builds on the same virtual environment.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The SAM CLI's usage telemetry would try to reach the network.
export SAM_CLI_TELEMETRY := 0
# sam build needs the Lambda runtime's interpreter (python3.13) on PATH.
PY313 := $(shell command -v python3.13 2>/dev/null || ls -d $$(pyenv root 2>/dev/null)/versions/3.13*/bin/python3.13 2>/dev/null | tail -n 1)

.PHONY: install demo test lint bench build deploy delete clean test-tools

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

demo: $(STAMP)
	$(BIN)/jitr demo

test: $(STAMP) test-tools
	$(BIN)/python -m pytest

# The local endpoint's tests drive it with the real mosquitto_pub client, and follow AWS's JITR
# guide with openssl (the aws CLI is a dev dependency, in $(VENV)).
test-tools:
	@command -v mosquitto_pub >/dev/null && command -v openssl >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing mosquitto-clients and openssl (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto-clients openssl >/dev/null; \
	  else \
	    echo "make test needs mosquitto_pub and openssl: apt-get install mosquitto-clients openssl (Debian/Ubuntu) or brew install mosquitto openssl (macOS)"; \
	    exit 2; \
	  fi; }

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/cfn-lint template.yaml
	$(BIN)/sam validate --lint --template template.yaml
	$(BIN)/checkov --quiet --compact --skip-download --framework cloudformation --file template.yaml

bench: $(STAMP)
	$(BIN)/python -m jitr.bench

build: $(STAMP)
	@test -n "$(PY313)" || { echo "sam build needs python3.13 on PATH (pyenv install 3.13, or your OS package)"; exit 2; }
	PATH="$(dir $(PY313)):$$PATH" $(BIN)/sam build

deploy: build
	$(BIN)/sam deploy --guided

delete: $(STAMP)
	$(BIN)/sam delete

clean:
	rm -rf $(VENV) .aws-sam .bench .pytest_cache .mypy_cache .ruff_cache
