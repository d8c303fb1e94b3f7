"""Faults on the cluster, each injected into a running `ingest`: PostgreSQL restarted (if the
scheduler exits, its supervisor starts it again), the object store restarted. Each run ends in
success with every row curated once. (A Celery worker killed during a task, and MLflow killed
during `train`: tests/cluster/test_backfill.py.)"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from tests.cluster.conftest import START

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

FIRST = START + timedelta(days=10)  # after the backfill module's days
DAYS = 8


@pytest.fixture(scope="module")
def landed(settings):
    from include.simulator import StreamSpec, simulate, write_daily_batches

    stream = simulate(StreamSpec(start=FIRST, days=DAYS, rows_per_day=120, seed=11))
    stream["id"] += 10_000_000  # ids of their own: the simulator numbers each stream's days from 1
    write_daily_batches(stream, settings.data.landing)
    return stream


def _wait_running(airflow, dag_id: str, run_id: str, task_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ti = airflow.task_instance(dag_id, run_id, task_id)
        if ti and ti["state"] == "running" and ti.get("hostname"):
            return ti
        if ti and ti["state"] in ("success", "failed"):
            raise AssertionError(f"{dag_id}.{task_id} ended ({ti['state']}) before the fault could be injected")
        time.sleep(1)
    raise AssertionError(f"{dag_id}.{task_id} of {run_id} did not start within {timeout:.0f} s")


def test_postgres_restarted_under_a_running_ingest_the_run_completes(cluster, airflow, settings, landed):
    from include.storage import Storage, Window

    span = (FIRST, FIRST + timedelta(days=3))
    run_id = airflow.trigger("ingest", "faults__pg_restart", {"start": span[0].isoformat(), "end": span[1].isoformat()})
    _wait_running(airflow, "ingest", run_id, "gate")
    cluster.restart_postgres()
    assert airflow.wait("ingest", run_id, timeout=600) == "success"
    curated = Storage.from_settings(settings).read_curated(Window.parse(*span))
    expected = landed[
        (landed.timestamp >= span[0].strftime("%Y-%m-%dT%H:%M:%SZ")) & (landed.timestamp < span[1].strftime("%Y-%m-%dT%H:%M:%SZ"))
    ]
    assert len(curated) == len(expected) and curated["id"].is_unique


def test_the_object_store_restarted_while_ingest_runs_the_run_completes_once(cluster, airflow, settings, landed):
    from include.storage import Storage, Window

    span = (FIRST + timedelta(days=3), FIRST + timedelta(days=6))
    run_id = airflow.trigger("ingest", "faults__store_restart", {"start": span[0].isoformat(), "end": span[1].isoformat()})
    _wait_running(airflow, "ingest", run_id, "gate")
    cluster.stop_process("object-store")  # a clean stop keeps the store (snapshot), as a restart of MinIO would
    cluster.start_object_store()
    assert airflow.wait("ingest", run_id, timeout=600) == "success"
    storage = Storage.from_settings(settings)
    curated = storage.read_curated(Window.parse(*span))
    expected = landed[
        (landed.timestamp >= span[0].strftime("%Y-%m-%dT%H:%M:%SZ")) & (landed.timestamp < span[1].strftime("%Y-%m-%dT%H:%M:%SZ"))
    ]
    assert len(curated) == len(expected) and curated["id"].is_unique
    # the table kept its history through the restart: the ingests of both modules are there
    publishes = [c for c in storage.curated().history() if c.get("driftloop.operation") == "publish"]
    assert {c["driftloop.run_id"] for c in publishes} >= {"faults__pg_restart", run_id}
