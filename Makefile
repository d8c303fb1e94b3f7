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

.PHONY: install demo up stop cluster cluster-stop test lint unit integration e2e cluster-test env compose-up compose-down lock bench benchmark bench-drift bench-scale bench-promotion bench-backtest backtest screens bench-cluster clean

install: $(STAMP)

# Reinstalls only when the requirements or the lock change; a no-op otherwise.
# .venv holds all three sets (runtime, test, deploy): `make cluster` runs every process from it.
# Then the project itself (--no-deps), for the `driftloop` command; setuptools comes from the lock.
$(STAMP): requirements.txt requirements-test.txt requirements-deploy.txt requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "pip==26.3"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-r requirements.txt -r requirements-test.txt -r requirements-deploy.txt -c requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

# CLUSTER=1: play the demo on the cluster of `make cluster` instead of local services
demo: install
	$(BIN)/python scripts/demo.py $(if $(CLUSTER),--cluster)

# the production topology on loopback (Postgres, Redis, an S3 store, MLflow with logins, Airflow
# on Celery with two workers); prints the generated credentials (.cluster/credentials.env)
cluster: install
	$(BIN)/python scripts/cluster.py start

cluster-stop:
	@test -x $(BIN)/python && $(BIN)/python scripts/cluster.py stop || echo "nothing to stop (no .venv)"

# the local services on your own config (CONFIG=path/to/your.yaml), schedules on, no simulator
up: install
	@test -n "$(CONFIG)" || (echo "usage: make up CONFIG=path/to/your.yaml" && exit 2)
	$(BIN)/python scripts/services.py up --config $(CONFIG)

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

# the production topology on its own ports and home (.cluster-test/), started and stopped by the tests
cluster-test: install
	$(BIN)/pytest tests/cluster -q

# docker/.env (0600) with generated secrets for docker-compose.yaml; FORCE=1 replaces an existing one
env: install
	$(BIN)/python scripts/compose_env.py $(if $(FORCE),--force)

compose-up: docker/.env
	docker compose --env-file docker/.env up -d --build

compose-down:
	docker compose --env-file docker/.env down

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -q -ra -n 2 --durations=15

# Re-resolves requirements.lock from the three requirements files (run after changing one).
lock: install
	$(BIN)/python scripts/lock.py

# Every benchmark below, one after the other (about 2.5 hours with the cluster load), and the
# measured section of BENCHMARKS.md rewritten; ONLY=drift,scale runs a subset
bench: install
	$(BIN)/python scripts/bench.py --days $(DAYS) $(if $(ONLY),--only $(ONLY))

# DAG parse time; retrain on the demo's four weeks against a plain script
benchmark: install
	$(BIN)/python scripts/benchmark.py

# the drift check at 1M rows a side against Evidently on all rows, over nine scenarios, and its growth with rows
bench-drift: install
	$(BIN)/python scripts/bench_drift.py

# the gate, retrain and monitor at 1M rows x 20 against plain scripts; the gate and retrain at 100k and 4M
bench-scale: install
	$(BIN)/python scripts/bench_scale.py

# drift verdict to promoted champion under airflow standalone, 100k training rows
bench-promotion: install
	$(BIN)/python scripts/bench_promotion.py

# the retraining backtest (static, every:4, drift) on four simulated streams with a known change point
bench-backtest: install
	$(BIN)/python scripts/bench_backtest.py

# the backtest of the demo's simulated stream (28 weeks, the rate shock from week 15): the README's
# picture and table, into docs/backtest/
backtest: install
	$(BIN)/python scripts/bench_backtest.py --streams demo --copy-demo docs/backtest

# the README's screenshots (docs/screens/, 1440x900), taken by the browser test on the demo's services
screens: install
	DRIFTLOOP_SCREENS=$(CURDIR)/docs/screens $(BIN)/pytest tests/e2e/test_demo_loop.py tests/e2e/test_demo_screens.py -q

# Load: DAYS daily intervals of ingest + monitor as a backfill, on a fresh cluster with two workers,
# then one, then under airflow standalone (the same-run baseline); one JSON line each.
DAYS ?= 50
bench-cluster: install
	$(BIN)/python scripts/bench_cluster.py --target cluster --workers 2 --days $(DAYS)
	$(BIN)/python scripts/bench_cluster.py --target cluster --workers 1 --days $(DAYS)
	$(BIN)/python scripts/bench_cluster.py --target standalone --days $(DAYS)

clean: stop cluster-stop
	rm -rf .airflow .mlflow .driftloop .cluster .cluster-test .cluster-bench .bench-standalone .bench-drift .bench-scale .bench-promotion .bench-backtest
