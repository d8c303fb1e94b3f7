# driftloop: `make demo` runs the loop on simulated data; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.install-stamp
export MLFLOW_DISABLE_TELEMETRY := true
export GX_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export PYTHONPATH := $(CURDIR)

.PHONY: install demo stop test lint unit integration e2e lock benchmark clean

install: $(STAMP)

# Reinstalls only when the requirements or the lock change; a no-op otherwise.
$(STAMP): requirements.txt requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "pip==26.3"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt -c requirements.lock
	@touch $(STAMP)

demo: install
	$(BIN)/python scripts/demo.py

stop:
	@test -x $(BIN)/python && $(BIN)/python scripts/services.py stop || echo "nothing to stop (no .venv)"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

unit: install
	$(BIN)/pytest tests/unit tests/dags -q

integration: install
	$(BIN)/pytest tests/integration -q

e2e: install
	$(BIN)/pytest tests/e2e -q

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -q -ra

# Regenerates the full lock from the current venv plus the deployment extras of
# requirements-deploy.txt (run after changing either requirements file).
lock:
	$(BIN)/python scripts/lock.py

benchmark: install
	$(BIN)/python scripts/benchmark.py

clean: stop
	rm -rf .airflow .mlflow .driftloop
