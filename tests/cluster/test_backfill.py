"""A backfill of `ingest` with four runs at a time, and a manual run over some of the same days, on
the cluster (Celery workers, Postgres): Airflow 3 gives a backfill its own max_active_runs, so the
DAG's max_active_runs=1 does not serialise them. The one-slot pool `driftloop_curated` does, and
every landed row ends in the curated Delta table on the object store exactly once, even though a
worker is killed (SIGKILL, with its task processes) in the middle of a `gate`."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pandas as pd
import pytest

from tests.cluster.conftest import START

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

DAYS = 10


@pytest.fixture(scope="module")
def landed(settings):
    from include.simulator import StreamSpec, simulate, write_daily_batches

    stream = simulate(StreamSpec(start=START, days=DAYS, rows_per_day=120))
    write_daily_batches(stream, settings.data.landing)
    return stream


def _backfill(client, start: datetime, end: datetime) -> int:
    body = {
        "dag_id": "ingest",
        "from_date": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "to_date": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "max_active_runs": 4,
        "reprocess_behavior": "completed",
    }
    return client._request("POST", "/api/v2/backfills", body)["id"]


def _running(client, task_id: str, timeout: float = 300, dag_id: str = "ingest") -> dict:
    """The first task instance of ``task_id`` seen running on a worker (any run of ``dag_id``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tis = client._request("GET", f"/api/v2/dags/{dag_id}/dagRuns/~/taskInstances?task_id={task_id}&state=running")["task_instances"]
        if tis and tis[0].get("hostname"):
            return tis[0]
        time.sleep(0.5)
    raise AssertionError(f"no {task_id} ran within {timeout:.0f} s")


def _retried(client, ti: dict, timeout: float = 300) -> dict:
    """The same task instance once a later try of it runs (or ran)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = client.task_instance("ingest", ti["dag_run_id"], ti["task_id"])
        if now["try_number"] > ti["try_number"] and now["state"] in ("running", "success") and now.get("hostname"):
            return now
        time.sleep(1)
    raise AssertionError(f"{ti['task_id']} of {ti['dag_run_id']} was not retried within {timeout:.0f} s")


def test_a_backfill_and_a_manual_run_over_the_same_days_curate_every_row_exactly_once(cluster, airflow, settings, landed):
    from include.landing import LandingZone
    from include.storage import Storage, Window

    client, stream = airflow, landed
    deadline = time.monotonic() + 120
    while "ingest" not in client.dag_ids() and time.monotonic() < deadline:
        time.sleep(2)
    last = START + timedelta(days=DAYS - 1)
    _backfill(client, START, last)
    # meanwhile an operator re-ingests three of the same days as one window
    manual = client.trigger(
        "ingest", "manual__overlap", {"start": (START + timedelta(days=3)).isoformat(), "end": (START + timedelta(days=6)).isoformat()}
    )

    # a machine dies under one of them: the worker running a `gate` is killed with every task
    # process it started (SIGKILL); the task is retried on the other worker once the scheduler
    # misses its heartbeat, and the victim comes back after that
    killed = _running(client, "gate")
    victim = "airflow-worker-" + killed["hostname"].split("@")[0].rsplit("-", 1)[1]
    time.sleep(1)
    cluster.kill(victim)
    try:
        retried = _retried(client, killed)
    finally:
        cluster.start_worker(victim)
    assert retried["hostname"] != killed["hostname"]

    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        runs = [r for r in client.runs("ingest") if r["run_type"] == "backfill" or r["dag_run_id"] == manual]
        if len(runs) == DAYS + 1 and all(r["state"] in ("success", "failed") for r in runs):
            break
        time.sleep(3)
    states = {r["dag_run_id"]: r["state"] for r in runs}
    assert len(states) == DAYS + 1 and set(states.values()) == {"success"}, states

    storage = Storage.from_settings(settings)
    curated = storage.read_curated(Window.parse(START, START + timedelta(days=DAYS)))
    assert len(curated) == len(stream) and curated["id"].is_unique
    assert sorted(curated["id"]) == sorted(stream["id"])
    published = LandingZone.from_settings(settings, storage).load()["published"]
    assert len(published) == DAYS + 1  # ten days and the manual three-day window
    commits = [c for c in storage.curated().history() if c.get("driftloop.operation") == "publish"]
    assert len(commits) == len(states)  # one commit per run, none half-written
    # the pool let one gate or publish run at a time: no two of them overlap in time
    spans = []
    for run_id in states:
        for task in ("gate", "publish"):
            ti = client.task_instance("ingest", run_id, task)
            assert ti["pool"] == "driftloop_curated"
            spans.append((pd.Timestamp(ti["start_date"]), pd.Timestamp(ti["end_date"])))
    spans.sort()
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:], strict=False))
    # the Celery workers shared the work, each named in the task instances' hostname
    hosts = {h.split("@")[0] for h in client.task_hosts()}
    assert hosts == {"worker-1", "worker-2"}, hosts


def test_a_retrain_with_mlflow_killed_during_train_registers_one_champion_with_its_artifacts_in_the_store(
    cluster, airflow, settings, landed, store
):
    """After the backfill: a retrain on the cluster, with the MLflow server killed (its whole
    process tree) for 15 s in the middle of `train`. The run completes with exactly one training
    run and one model version; it logged to MLflow as the workers' user, keeps the model in the
    object store and links to the MLflow public URL; the model loads back from here (MLflow hands
    out presigned URLs of the store)."""
    from mlflow import MlflowClient

    from include import registry
    from tests.cluster.conftest import NAME

    end = START + timedelta(days=DAYS)
    run_id = airflow.trigger("retrain", "cluster__initial", {"end": end.isoformat(), "window": f"{DAYS}D", "reason": "initial"})
    _running(client=airflow, task_id="train", dag_id="retrain")
    time.sleep(3)  # inside train: its MLflow run exists, the model is not logged yet
    cluster.kill("mlflow")
    time.sleep(15)
    cluster.start_mlflow()
    assert airflow.wait("retrain", run_id, timeout=800) == "success"
    trained = airflow.xcom("retrain", run_id, "train")
    assert trained["version"] == 1
    experiment = MlflowClient().get_experiment_by_name(NAME)
    assert len(MlflowClient().search_runs([experiment.experiment_id], f"tags.`driftloop.airflow_run_id` = '{run_id}'")) == 1
    assert len(MlflowClient().search_model_versions(f"name = '{NAME}'")) == 1
    assert trained["mlflow_url"].startswith(cluster.creds["MLFLOW_URL"] + "/#/experiments/")
    client = MlflowClient()
    assert client.get_model_version_by_alias(NAME, "champion").version == "1"
    run = client.get_run(client.get_model_version(NAME, "1").run_id)
    assert run.info.user_id == cluster.client_env()["MLFLOW_TRACKING_USERNAME"]
    assert run.data.tags["driftloop.airflow_run_id"] == run_id
    assert store.find("driftloop/mlflow"), "no MLflow artifact in the object store"
    model = registry.load_model(f"models:/{NAME}@champion")
    frame = landed.head(20)
    assert len(model.predict_proba(frame[settings.data.features])) == 20


def test_task_logs_are_on_the_object_store_and_the_ui_reads_them_from_there(cluster, airflow, store):
    """After the backfill: every finished task's log was written to the object store, and the API
    (what the UI's log view calls) serves it from there, even with the workers' log folder gone."""
    import json
    import shutil
    from urllib.parse import quote

    from cluster import BUCKET

    tis = [ti for ti in airflow.task_instances() if (ti["dag_id"], ti["task_id"], ti["state"]) == ("ingest", "publish", "success")]
    assert tis
    for ti in tis:
        key = f"{BUCKET}/airflow-logs/dag_id=ingest/run_id={ti['dag_run_id']}/task_id=publish/attempt={ti['try_number']}.log"
        assert store.exists(key), key
    shutil.rmtree(cluster.home / "airflow" / "logs", ignore_errors=True)  # nothing left on the workers' disk
    ti = tis[0]
    path = f"/api/v2/dags/ingest/dagRuns/{quote(ti['dag_run_id'], safe='')}/taskInstances/publish/logs/{ti['try_number']}"
    text = json.dumps(airflow._request("GET", path))
    assert "s3://driftloop/airflow-logs/dag_id=ingest" in text  # the source the log was read from
    assert "(balanced)" in text, text[:2000]  # publish's account of the rows, as the task logged it


def test_every_interval_of_a_backfill_is_monitored_once_although_monitor_runs_one_at_a_time(cluster, airflow, settings, landed):
    """After the retrain (a champion exists): five more days backfilled four at a time. Their curated
    events arrive while monitor (max_active_runs=1) is busy. Airflow 3.3 hands a deferred run only
    the events up to its trigger time and clears the queue (apache/airflow#56050), which left the
    last interval of a backfill unmonitored until the next day's event; monitor's catch_up wakes it
    again. Every curated event is taken by exactly one monitor run and every interval has a verdict."""
    from urllib.parse import quote

    from include.simulator import StreamSpec, simulate, write_daily_batches
    from include.storage import Storage

    more, skip = 5, 20  # days 20-24: tests/cluster/test_faults.py lands days 10-17
    first = START + timedelta(days=skip)
    stream = simulate(StreamSpec(start=START, days=skip + more, rows_per_day=120))
    write_daily_batches(stream[stream.timestamp >= pd.Timestamp(first, tz="UTC")], settings.data.landing)
    before = {r["dag_run_id"] for r in airflow.runs_all("monitor")}
    ingested = {r["dag_run_id"] for r in airflow.runs_all("ingest")}
    _backfill(airflow, first, first + timedelta(days=more - 1))

    storage = Storage.from_settings(settings)
    wanted = {(first + timedelta(days=d)).strftime("%Y-%m-%d") for d in range(more)}
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        judged = {v["start"][:10] for v in storage.verdicts()}
        runs = [r for r in airflow.runs_all("monitor") if r["dag_run_id"] not in before]
        if wanted <= judged and runs and all(r["state"] in ("success", "failed") for r in runs):
            break
        time.sleep(5)
    assert wanted <= judged, f"intervals without a verdict: {sorted(wanted - judged)}"
    assert {r["state"] for r in runs} == {"success"}, runs
    ingests = {r["dag_run_id"] for r in airflow.runs_all("ingest") if r["dag_run_id"] not in ingested}
    assert len(ingests) == more
    taken: list[str] = []
    for run in runs:
        path = f"/api/v2/dags/monitor/dagRuns/{quote(run['dag_run_id'], safe='')}/upstreamAssetEvents"
        taken += [e["source_run_id"] for e in airflow._request("GET", path)["asset_events"] if e["source_dag_id"] == "ingest"]
    assert sorted(t for t in taken if t in ingests) == sorted(ingests)  # each event once, none left behind
    # and each interval is one snapshot of the model-health dashboard, sent by the workers
    from include.dashboard import Dashboard

    days = [s["metadata"]["start"][:10] for s in Dashboard(cluster.creds["EVIDENTLY_URL"]).snapshots(settings.name)]
    assert wanted <= set(days) and len(days) == len(set(days)), days
