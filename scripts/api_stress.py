"""Fires bursts of concurrent audit-logged requests (PATCH /api/v2/dags/<id>) at a fresh local
``airflow standalone`` and prints their latencies and errors. It measures how the api-server on
SQLite copes with concurrent writers (see the docstring of scripts/services.py).

    python scripts/api_stress.py [--sqlite-timeout SECONDS] [--bursts 5] [--concurrency 12]

``--sqlite-timeout`` sets ``[database] sql_alchemy_connect_args`` to that busy timeout (the default
is sqlite3's own, 5 s). The services run in a temporary home and are stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import services  # noqa: E402 (scripts/ is not a package)

from include.airflow_api import Airflow  # noqa: E402

DAG_IDS = ["ingest", "monitor", "retrain", "rollback", "drift_watch"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sqlite-timeout", type=float)
    parser.add_argument("--bursts", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=12)
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="driftloop-api-stress-"))
    svc = services.Services(
        home=home, airflow_port=services.free_port(), mlflow_port=services.free_port(), config=services.ROOT / "include" / "demo.yaml"
    )
    if args.sqlite_timeout is not None:
        (home / "connect_args.py").write_text(f"CONNECT_ARGS = {{'timeout': {args.sqlite_timeout}}}\n")
        plain_env = svc.env

        def env() -> dict[str, str]:
            e = plain_env()
            e["PYTHONPATH"] += f":{home}"
            e["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS"] = "connect_args.CONNECT_ARGS"
            return e

        svc.env = env
    services.start(svc)
    try:
        client = Airflow(svc.airflow_url, "admin", svc.password())
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not set(DAG_IDS) <= client.dag_ids().keys():
            time.sleep(2)
        latencies: list[float] = []
        errors: list[str] = []

        def hit(i: int) -> None:
            t = time.monotonic()
            req = urllib.request.Request(
                f"{svc.airflow_url}/api/v2/dags/{DAG_IDS[i % len(DAG_IDS)]}",
                data=json.dumps({"is_paused": bool(i % 2)}).encode(),
                method="PATCH",
                headers={"Content-Type": "application/json", "Authorization": f"Bearer {client.token}"},
            )
            try:
                urllib.request.urlopen(req, timeout=90).read()
            except Exception as err:  # noqa: BLE001 (every failure is a figure here)
                errors.append(f"{type(err).__name__}: {str(err)[:60]}")
            latencies.append(time.monotonic() - t)

        for _ in range(args.bursts):
            threads = [threading.Thread(target=hit, args=(i,)) for i in range(args.concurrency)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        latencies.sort()
        timeout = "default (5 s)" if args.sqlite_timeout is None else f"{args.sqlite_timeout:g} s"
        print(
            f"sqlite timeout {timeout}: {len(latencies)} requests, max {latencies[-1]:.1f} s, "
            f"median {latencies[len(latencies) // 2]:.2f} s, errors {len(errors)} {sorted(set(errors))[:3]}"
        )
    finally:
        services.stop(home)


if __name__ == "__main__":
    main()
