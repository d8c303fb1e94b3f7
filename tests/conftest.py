"""Shared test setup. Airflow reads its configuration when first imported, so its environment
is fixed here, before any test module imports it: a throw-away AIRFLOW_HOME, no example DAGs,
this checkout's dags/ and plugins/. Telemetry is off in every process (there is no network)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_HOME = Path(tempfile.mkdtemp(prefix="driftloop-airflow-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(_HOME),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "GX_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
)
for path in (str(ROOT), str(ROOT / "plugins")):
    if path not in sys.path:
        sys.path.insert(0, path)

DEMO_CONFIG = ROOT / "include" / "demo.yaml"


def write_config(folder: Path, name: str = "car_loans", **overrides) -> Path:
    """A config like the demo's, with storage and landing inside ``folder``."""
    import yaml

    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw["name"] = name
    raw["storage"] = str(folder / "store")
    raw["data"]["landing"] = str(folder / "landing")
    for dotted, value in overrides.items():
        node = raw
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    path = folder / "driftloop.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
def settings(tmp_path, monkeypatch):
    """Settings of a fresh project in ``tmp_path`` (also exported as DRIFTLOOP_CONFIG)."""
    from include.config import load_settings

    path = write_config(tmp_path)
    monkeypatch.setenv("DRIFTLOOP_CONFIG", str(path))
    return load_settings(path)


@pytest.fixture(scope="session")
def stream():
    """Six weeks of simulated applications from Monday 2026-01-05; drift from 2026-02-02."""
    from include.simulator import StreamSpec, simulate

    return simulate(StreamSpec(start=datetime(2026, 1, 5), days=42, drift_start=datetime(2026, 2, 2), rows_per_day=150))


class Hook:
    """A real HTTP webhook on a free local port that records what it receives."""

    def __init__(self, status: int = 200) -> None:
        self.received: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                hook.received.append({"path": self.path, "body": json.loads(self.rfile.read(int(self.headers["Content-Length"])))})
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/driftloop"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def chromium_path() -> str:
    """Debian's Chromium (Playwright's own browser download cannot run on these machines): installed
    with apt-get when missing and running as root (CI), else the test stops saying what to install."""
    import shutil

    if shutil.which("chromium") is None:
        sys.path.insert(0, str(ROOT / "scripts"))
        from cluster import apt_install

        try:
            apt_install(["chromium"], "the browser tests' Chromium")
        except SystemExit as err:
            pytest.fail(str(err))
    return shutil.which("chromium")


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield chromium
        chromium.close()


def log_in(page, url: str, user: str, password: str) -> None:
    """Signs in to the Airflow UI at ``url`` as a user would: an anonymous visit is sent to the
    login page, the form is filled and sent."""
    import re

    page.goto(url + "/")
    page.wait_for_url(re.compile(r".*/auth/login.*"))  # anonymous: sent to the login page
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_load_state("networkidle")


def submit_trigger_form(page, airflow, dag_id: str, before: set[str], timeout: float = 60) -> dict:
    """Presses the open trigger form's Trigger button and returns the one run it made (a run of
    ``dag_id`` not among ``before``, as the REST API lists it)."""
    import time

    page.get_by_role("dialog").get_by_role("button", name="Trigger").click()
    page.get_by_text("Dag Run Triggered").first.wait_for(timeout=30_000)
    deadline = time.monotonic() + timeout
    while not (new := [r for r in airflow.runs_all(dag_id) if r["dag_run_id"] not in before]) and time.monotonic() < deadline:
        time.sleep(1)
    assert len(new) == 1, new
    return new[0]


# Whole units of work for `make test`'s pytest-xdist workers: the cluster tier runs one cluster
# per session (fixed ports and home), the e2e tier one stack of local services at a time.
_WHOLE_TIERS = ("tests/cluster/", "tests/e2e/")


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    """How `make test` shares the tests between its pytest-xdist workers: whole modules (their
    module-scoped projects, and tests that build on each other, stay on one worker, in order), and
    the cluster and e2e tiers whole. xdist hands out the units of the most tests first, so both
    workers start on unit modules and the two heavy tiers overlap light tests more than each
    other (this order took 23.5 min here; with cluster and e2e first, side by side, a run was
    400 tests short of the end after 27 min).
    (xdist's own ``--dist loadgroup`` marks do not group under pytest 9, which no longer reads the
    node id xdist rewrites.)"""
    from xdist.scheduler import LoadScopeScheduling

    class TierScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return next((tier for tier in _WHOLE_TIERS if path.startswith(tier)), path)

    return TierScheduling(config, log)
