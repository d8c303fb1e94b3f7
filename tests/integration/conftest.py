"""Integration setup: the real Airflow metadata DB, a real MLflow tracking server and a real
Evidently UI service (the model-health dashboard).

tests/conftest.py has already pointed Airflow at a throw-away AIRFLOW_HOME and this checkout's
dags/ and plugins/. Here, once per session, the metadata DB is migrated (``airflow db migrate``, as
a user would) and an MLflow server is started on a free port with a SQLite backend and a local
artifact store, and ``evidently ui`` on a throw-away workspace; ``MLFLOW_TRACKING_URI`` (and
``EVIDENTLY_URL``) point every task (they run in this process under
``dag.test()``) at it. Each test module works on its own project folder and registered-model name,
so modules never see each other's models, verdicts or curated rows.
"""

from __future__ import annotations

import contextlib
import copy
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import ROOT, Hook, write_config

sys.path.insert(0, str(ROOT / "scripts"))
from services import evidently_command, mlflow_command  # noqa: E402

BIN = Path(sys.executable).parent
START = datetime(2026, 1, 5)  # a Monday: weeks below are [START + 7k, START + 7(k+1))
ROWS_PER_DAY = 150
# Fewer boosting rounds than the demo's 150: fitting dominates a retrain (five fits per run) and
# these tests check the loop's records and decisions, not the model's quality.
FAST_MODEL = {"max_iter": 40, "learning_rate": 0.15}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"server not healthy at {url} after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """The Airflow metadata DB of this session's AIRFLOW_HOME, migrated once, with driftloop's
    pools (as the local services and the compose init create them)."""
    out = subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=os.environ.copy(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"airflow db migrate failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    from driftloop_airflow import create_pools

    create_pools()


@contextlib.contextmanager
def _server(cmd: list[str], log: Path, health: str, env: dict[str, str]) -> Iterator[None]:
    """A server process in a session of its own, healthy before the block and stopped (its whole
    group) after it; ``env`` is set in ``os.environ`` meanwhile (the tasks read it when they run)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=os.environ.copy(), start_new_session=True
        )
    previous = {k: os.environ.get(k) for k in env}
    try:
        _wait_healthy(health, proc, log)
        os.environ.update(env)
        yield
    finally:
        for k, v in previous.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory) -> Iterator[str]:
    """A real MLflow tracking server (SQLite backend, local artifacts); yields its URL.

    ``MLFLOW_TRACKING_URI`` is set in ``os.environ`` for the whole session because the tasks read
    it when they run; the server's process group is stopped at teardown.
    """
    home = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with _server(mlflow_command(home, port, workers=1), home / "server.log", f"{url}/health", {"MLFLOW_TRACKING_URI": url}):
        yield url


@pytest.fixture(scope="session")
def evidently_server(tmp_path_factory) -> Iterator[str]:
    """A real Evidently UI service (the model-health dashboard) on a throw-away workspace, with a
    write secret; yields its URL. ``EVIDENTLY_URL`` and ``EVIDENTLY_SECRET`` point monitor's
    ``report`` tasks at it."""
    home = tmp_path_factory.mktemp("evidently")
    port, secret = _free_port(), secrets.token_urlsafe(12)
    url = f"http://127.0.0.1:{port}"
    env = {"EVIDENTLY_URL": url, "EVIDENTLY_SECRET": secret}
    with _server(evidently_command(home / "workspace", port), home / "server.log", f"{url}/api/version", env):
        yield url


@pytest.fixture(scope="session")
def alert_hook() -> Iterator[Hook]:
    """A real webhook for driftloop's alerts, reached through the Airflow connection
    ``driftloop_alerts`` (defined the way a deployment would: an ``AIRFLOW_CONN_*`` variable)."""
    hook = Hook()
    os.environ["AIRFLOW_CONN_DRIFTLOOP_ALERTS"] = hook.url
    yield hook
    os.environ.pop("AIRFLOW_CONN_DRIFTLOOP_ALERTS", None)
    hook.close()


def alerts_for(hook: Hook, dr) -> list[dict]:
    """The alerts a DagRun sent to the webhook (their ``driftloop`` part)."""
    return [r["body"]["driftloop"] for r in hook.received if r["body"]["driftloop"]["run_id"] == dr.run_id]


@pytest.fixture(scope="session")
def dagbag(airflow_db, mlflow_server, evidently_server, alert_hook):
    """The project's DAGs, parsed once (``bag.dags[...]``; ``get_dag`` would go to the DB)."""
    from airflow.models import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}, bag.import_errors
    return bag


@pytest.fixture(scope="session")
def mlflow_client(mlflow_server):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=mlflow_server)


class Project:
    """One driftloop project on disk: its config (exported as DRIFTLOOP_CONFIG), landing zone and
    storage, plus helpers that run the DAGs with ``dag.test()``."""

    def __init__(self, folder: Path, name: str, dagbag, **overrides) -> None:
        from include.config import load_settings

        self.folder = folder
        self.name = name
        self.dagbag = dagbag
        self.config = write_config(folder, name=name, **overrides)
        self.settings = load_settings(self.config)
        self.landing = Path(self.settings.data.landing)
        self.landing.mkdir(parents=True, exist_ok=True)

    @property
    def storage(self):
        from include.storage import Storage

        return Storage.from_settings(self.settings)

    def land(self, frame) -> list[str]:
        from include.simulator import write_daily_batches

        return write_daily_batches(frame, str(self.landing))

    def run(self, dag_id: str, conf: dict | None = None, **kwargs):
        """Runs one DAG to its end with this project's config; returns the DagRun.

        dag.test() runs the tasks in this process and writes the run conf into the task objects'
        ``params``, where it would leak into the next run of the same DAG object (a later run
        without ``window`` would inherit the previous run's). The params are restored after each
        run so that every run sees the DAG's defaults plus its own conf, as on a real worker.
        """
        os.environ["DRIFTLOOP_CONFIG"] = str(self.config)
        dag = self.dagbag.dags[dag_id]
        saved = {t.task_id: copy.deepcopy(t.params) for t in dag.tasks}
        try:
            return dag.test(run_conf=conf or {}, **kwargs)
        finally:
            for t in dag.tasks:
                t.params = saved[t.task_id]

    def ingest(self, start: datetime, end: datetime):
        return self.run("ingest", {"start": start.isoformat(), "end": end.isoformat()})

    def monitor(self, start: datetime, end: datetime):
        return self.run("monitor", {"start": start.isoformat(), "end": end.isoformat()})

    def retrain(self, end: datetime, reason: str = "initial", window: str = "28D", **kwargs):
        return self.run("retrain", {"end": end.isoformat(), "window": window, "reason": reason}, **kwargs)


@pytest.fixture(scope="module")
def project_factory(tmp_path_factory, dagbag, request):
    """Makes Projects whose model names are unique to the module (and to each call)."""
    made: list[Project] = []
    previous = os.environ.get("DRIFTLOOP_CONFIG")
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")

    def make(suffix: str = "", **overrides) -> Project:
        name = f"it_{module}{'_' + suffix if suffix else ''}_{len(made)}_{os.getpid()}"
        overrides.setdefault("model__params", FAST_MODEL)
        project = Project(tmp_path_factory.mktemp(name), name, dagbag, **overrides)
        made.append(project)
        return project

    yield make
    if previous is None:
        os.environ.pop("DRIFTLOOP_CONFIG", None)
    else:
        os.environ["DRIFTLOOP_CONFIG"] = previous


def rows_in(frame, start: datetime, end: datetime):
    """The rows of a simulated frame with ``start <= timestamp < end`` (naive bounds read as UTC)."""
    import pandas as pd

    lo, hi = pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC")
    return frame[(frame["timestamp"] >= lo) & (frame["timestamp"] < hi)]


def stable_weeks(n: int):
    """``n`` weeks of the simulated stream from START, without drift."""
    from include.simulator import StreamSpec, simulate

    return simulate(StreamSpec(start=START, days=7 * n, rows_per_day=ROWS_PER_DAY))


def week(k: int) -> tuple[datetime, datetime]:
    """The half-open week ``k`` of the simulated stream (week 0 starts on START)."""
    return START + timedelta(days=7 * k), START + timedelta(days=7 * (k + 1))


def champion(project, client) -> int:
    """The version behind ``<model>@champion``."""
    return int(client.get_model_version_by_alias(project.name, "champion").version)


def task_states(dr) -> dict[str, str | None]:
    """``{task_id: state}`` of a finished DagRun, read back from the metadata DB."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter(DagRun.dag_id == dr.dag_id, DagRun.run_id == dr.run_id).one()
        return {
            ti.task_id: (str(ti.state.value) if hasattr(ti.state, "value") else ti.state) for ti in run.get_task_instances(session=session)
        }


def xcom_value(dr, task_id: str, key: str = "return_value", map_index: int | None = None):
    """An XCom (by default the return value) a task of a finished DagRun pushed, read back from the metadata DB."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        query = XComModel.get_many(run_id=dr.run_id, key=key, task_ids=task_id, dag_ids=dr.dag_id, map_indexes=map_index)
        row = session.scalars(query).first()
        return None if row is None else XComModel.deserialize_value(row)
