"""The cluster tests run against the production topology of ``make cluster`` (scripts/cluster.py):
Postgres, Redis, the S3 store with its own keys, MLflow with basic auth, Airflow on Celery with
two workers and FAB logins. One cluster serves the whole session, with a home and ports of its own
(``.cluster-test/``, ports from 25000) so a user's cluster on the default ports keeps running.

Its driftloop config puts storage and landing on the object store, ingest daily from START.
"""

from __future__ import annotations

import os
import shutil
import sys
from datetime import datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "scripts") not in sys.path:
    sys.path.insert(0, str(ROOT / "scripts"))

START = datetime(2026, 1, 5)
NAME = "cluster_e2e"


@pytest.fixture(scope="session")
def cluster():
    """A fresh cluster (started once per session; stopped at the end, leaving no process)."""
    import yaml
    from cluster import Cluster, read_env

    home = ROOT / ".cluster-test"
    if home.exists():  # a fresh cluster every session: runs, models and data of an earlier one would collide
        stale = Cluster(home, base=int(os.environ.get("CLUSTER_TEST_PORT_BASE", 25000)))
        stale.stop()
        if stale.pg_data.exists() and not stale.pg_data.is_relative_to(home):
            shutil.rmtree(stale.pg_data)
        shutil.rmtree(home)
    home.mkdir()
    raw = yaml.safe_load((ROOT / "include" / "demo.yaml").read_text())
    raw.update(name=NAME, storage="s3://driftloop/tests/store")
    raw["data"]["landing"] = "s3://driftloop/tests/landing"
    raw["schedule"] = {"ingest": "@daily", "retrain": None, "start_date": START.strftime("%Y-%m-%d"), "catchup": False}
    config = home / "driftloop.yaml"
    config.write_text(yaml.safe_dump(raw))
    base = int(os.environ.get("CLUSTER_TEST_PORT_BASE", 25000))  # another base lets two checkouts test at once
    # a killed worker's running task is retried sooner, and the tasks it had received but not
    # started are sent again after 3 minutes instead of 10
    cl = Cluster(home, base=base, config=config, heartbeat_timeout=30, queued_timeout=180)
    try:
        cl.start()
        cl.creds = read_env(home / "credentials.env")
        yield cl
    finally:
        cl.stop()


@pytest.fixture(scope="module", autouse=True)
def cluster_env(cluster):
    """While a cluster module runs, this process reaches the object store and MLflow as the workers
    do; the environment is restored after it (the other tiers run in the same session)."""
    saved = dict(os.environ)
    os.environ.update(cluster.client_env())
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def airflow(cluster):
    """The demo's REST client, logged in as the cluster's admin (FAB)."""
    from include.airflow_api import Airflow

    client = Airflow(cluster.creds["AIRFLOW_URL"], cluster.creds["AIRFLOW_USER"], cluster.creds["AIRFLOW_PASSWORD"])
    return client


@pytest.fixture(scope="session")
def store(cluster):
    """The cluster's object store, as the tests read it (its own keys; no listings cache)."""
    import s3fs

    env = cluster.s3_env()
    return s3fs.S3FileSystem(
        key=env["AWS_ACCESS_KEY_ID"],
        secret=env["AWS_SECRET_ACCESS_KEY"],
        client_kwargs={"endpoint_url": env["AWS_ENDPOINT_URL"]},
        use_listings_cache=False,
    )


@pytest.fixture(scope="session")
def settings(cluster):
    from include.config import load_settings

    return load_settings(cluster.config_file)
