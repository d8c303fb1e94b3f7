"""Load: a backfill of N daily intervals of ``ingest`` (four runs at a time), each curated event
starting ``monitor``, on the cluster with one or two Celery workers, or under ``airflow
standalone`` (LocalExecutor, SQLite) for the same-run baseline. Prints one JSON line: the wall time
from the backfill's creation to the last verdict, intervals per minute, the task instances per
worker, and the checks that every interval was processed exactly once (one publish commit and one
verdict per interval, every landed row curated once, one prediction per row).

Before the clock starts, a champion is trained on four weeks (``monitor`` scores with it).

    python scripts/bench_cluster.py --target cluster --workers 2 --days 50
    python scripts/bench_cluster.py --target cluster --workers 1 --days 50
    python scripts/bench_cluster.py --target standalone --days 50
    (all three: make bench-cluster DAYS=50)

The cluster is a fresh one of its own (``.cluster-bench/``, ports from 22000), stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

START = datetime(2026, 1, 5)
HISTORY = 28
ROWS_PER_DAY = 300


def iso(d: datetime) -> str:
    return d.strftime("%Y-%m-%dT%H:%M:%SZ")


def config(folder: Path, storage: str, landing: str) -> Path:
    import yaml

    raw = yaml.safe_load((ROOT / "include" / "demo.yaml").read_text())
    raw.update(name="bench_load", storage=storage)
    raw["data"]["landing"] = landing
    raw["schedule"] = {"ingest": "@daily", "retrain": None, "start_date": START.strftime("%Y-%m-%d"), "catchup": False}
    raw["monitoring"]["cooldown"] = "1000D"  # no drift retrain in the middle of the measure
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "driftloop.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def backfill(client, start: datetime, end: datetime) -> None:
    """Creates the backfill while ``ingest`` is paused, then unpauses it. Under ``airflow
    standalone`` (SQLite) the scheduler died when it started the first backfill runs while the
    api-server was still creating the others: ``IntegrityError`` (FOREIGN KEY) creating their task
    instances, then ``ObjectDeletedError`` on the DagRun; standalone does not restart it (see
    BENCHMARKS.md). The scheduler leaves the runs of a paused DAG alone."""
    body = {"dag_id": "ingest", "from_date": iso(start), "to_date": iso(end), "max_active_runs": 4, "reprocess_behavior": "completed"}
    client.pause("ingest")
    try:
        for attempt in range(10):  # SQLite (standalone) may answer 503 "database is locked"
            try:
                client._request("POST", "/api/v2/backfills", body)
                return
            except RuntimeError as err:
                if "HTTP 409" in str(err) and attempt:
                    return
                if "HTTP 503" not in str(err):
                    raise
                time.sleep(2 + attempt)
        raise RuntimeError("the backfill could not be created")
    finally:
        client.unpause("ingest")


def play(client, settings, days: int) -> dict:
    from include.simulator import StreamSpec, simulate, write_daily_batches
    from include.storage import Storage, Window

    stream = simulate(StreamSpec(start=START, days=HISTORY + days, rows_per_day=ROWS_PER_DAY))
    write_daily_batches(stream, settings.data.landing)
    deadline = time.monotonic() + 300
    while not {"ingest", "monitor", "retrain"} <= set(client.dag_ids()):
        if time.monotonic() > deadline:
            raise TimeoutError("DAGs not parsed")
        time.sleep(2)
    first = START + timedelta(days=HISTORY)
    run = client.trigger("ingest", "bench__history", {"start": iso(START), "end": iso(first)})
    assert client.wait("ingest", run, 900) == "success", "ingest of the history failed"
    run = client.trigger("retrain", "bench__initial", {"end": iso(first), "window": f"{HISTORY}D", "reason": "initial"})
    assert client.wait("retrain", run, 900) == "success", "the initial retrain failed"

    storage = Storage.from_settings(settings)
    before = len(storage.verdicts())
    started = time.monotonic()
    backfill(client, first, first + timedelta(days=days - 1))
    deadline = started + 4 * 3600
    while time.monotonic() < deadline:
        runs = [r for r in client.runs_all("ingest") if r["run_type"] == "backfill"]
        ingested = len(runs) == days and all(r["state"] in ("success", "failed") for r in runs)
        monitors = client.runs_all("monitor")
        if ingested and len(storage.verdicts()) - before >= days and all(r["state"] in ("success", "failed") for r in monitors):
            break
        time.sleep(5)
    wall = time.monotonic() - started
    span = Window.parse(first, first + timedelta(days=days))
    landed = stream[(stream.timestamp >= iso(first)) & (stream.timestamp < iso(span.end))]
    curated = storage.read_curated(span)
    commits = [c for c in storage.curated().history() if c.get("driftloop.operation") == "publish"]
    backfill_runs = {r["dag_run_id"] for r in runs}
    predictions = [
        storage.read_parquet(storage.predictions_path(Window(first + timedelta(days=d), first + timedelta(days=d + 1))))
        for d in range(days)
    ]
    return {
        "days": days,
        "wall_s": round(wall, 1),
        "intervals_per_min": round(days / wall * 60, 2),
        "ingest_runs": {s: sum(r["state"] == s for r in runs) for s in ("success", "failed")},
        "monitor_runs": {s: sum(r["state"] == s for r in monitors) for s in ("success", "failed")},
        "verdicts": len(storage.verdicts()) - before,
        "publish_commits": sum(c.get("driftloop.run_id") in backfill_runs for c in commits),
        "rows_landed": len(landed),
        "rows_curated": len(curated),
        "ids_unique": bool(curated["id"].is_unique),
        "predictions": sum(len(p) for p in predictions),
        "predictions_unique": all(p["id"].is_unique for p in predictions),
        "task_instances_per_host": client.task_hosts(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=["cluster", "standalone"], required=True)
    parser.add_argument("--workers", type=int, choices=[1, 2], default=2)
    parser.add_argument("--days", type=int, default=50)
    args = parser.parse_args()
    # stopped from outside (SIGTERM, or SIGINT, which a background job of a script ignores): the
    # finally blocks below stop what was started
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(130))
    sys.stdout.reconfigure(line_buffering=True)

    from include.airflow_api import Airflow
    from include.config import load_settings

    if args.target == "cluster":
        from cluster import WORKERS, Cluster, read_env

        home = ROOT / ".cluster-bench"
        if home.exists():
            Cluster(home, base=22000).stop()
            shutil.rmtree(home, ignore_errors=True)  # a fresh cluster: Postgres data, store, secrets
        path = config(home, "s3://driftloop/bench/store", "s3://driftloop/bench/landing")
        cluster = Cluster(home, base=22000, config=path)
        try:
            cluster.start()
            if args.workers == 1:
                cluster.stop_process(WORKERS[1])
            os.environ.update(cluster.client_env())
            creds = read_env(home / "credentials.env")
            client = Airflow(creds["AIRFLOW_URL"], creds["AIRFLOW_USER"], creds["AIRFLOW_PASSWORD"])
            result = play(client, load_settings(path), args.days)
        finally:
            cluster.stop()
            if cluster.pg_data.exists() and not cluster.pg_data.is_relative_to(home):
                shutil.rmtree(cluster.pg_data, ignore_errors=True)
    else:
        from services import Services, free_port, start, stop

        home = ROOT / ".bench-standalone"
        shutil.rmtree(home, ignore_errors=True)
        path = config(home, str(home / "store"), str(home / "landing"))
        svc = Services(home / "services", free_port(), free_port(), path)
        try:
            start(svc)
            os.environ["MLFLOW_TRACKING_URI"] = svc.mlflow_url
            client = Airflow(svc.airflow_url, "admin", svc.password())
            result = play(client, load_settings(path), args.days)
        finally:
            stop(svc.home)
    print(json.dumps({"target": args.target, "workers": args.workers if args.target == "cluster" else "local", **result}))


if __name__ == "__main__":
    main()
