"""Your own data in three commands, end to end: `make up CONFIG=...` (scripts/services.py up) on
the example export of examples/churn (not the demo's), then `driftloop bootstrap` drives the real
scheduler through its REST API: the history ingested window by window, a first champion, each
later week monitored, the table printed. A second bootstrap starts no run twice."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.conftest import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]


@pytest.fixture(scope="module")
def up(tmp_path_factory):
    from services import free_port, stop

    folder = tmp_path_factory.mktemp("own")
    shutil.copytree(ROOT / "examples" / "churn" / "landing", folder / "landing")
    raw = yaml.safe_load((ROOT / "examples" / "churn" / "churn.yaml").read_text())
    raw["storage"] = str(folder / "store")
    config = folder / "churn.yaml"
    config.write_text(yaml.safe_dump(raw))
    home = folder / "services"
    ports = [str(free_port()), str(free_port())]
    cmd = [sys.executable, str(ROOT / "scripts" / "services.py"), "up", "--config", str(config), "--home", str(home)]
    try:
        out = subprocess.run([*cmd, "--airflow-port", ports[0], "--mlflow-port", ports[1]], capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
        yield folder, config, home, ports, out.stdout
    finally:
        stop(home)


def admin_password(home) -> str:
    """The admin password the local services generated (what `make up` prints)."""
    from services import Services

    return Services(home, 0, 0, ROOT).password()


def bootstrap(folder, config, home, ports, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "AIRFLOW_PASSWORD": admin_password(home), "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{ports[1]}"}
    command = [str(ROOT / ".venv" / "bin" / "driftloop"), "bootstrap", "--config", str(config), "--until", "2026-03-30"]
    return subprocess.run(
        [*command, "--airflow-url", f"http://127.0.0.1:{ports[0]}", *extra], capture_output=True, text=True, env=env, timeout=1200
    )


def test_up_prints_where_everything_is_and_what_to_run_next(up):
    _, config, home, ports, printed = up
    assert f"Airflow   http://127.0.0.1:{ports[0]}   user admin, password " in printed
    assert f"MLflow    http://127.0.0.1:{ports[1]}   experiments 'churn', 'churn-monitoring'" in printed
    assert f"driftloop bootstrap --config {config} --until YYYY-MM-DD" in printed and "`make stop`" in printed


def test_bootstrap_trains_a_champion_and_monitors_each_later_week(up):
    folder, config, home, ports, _ = up
    done = bootstrap(folder, config, home, ports)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = done.stdout[done.stdout.index("interval") :].splitlines()
    assert table[2].startswith("2026-03-02..2026-03-30  2857  passed") and "v1" in table[2]  # rows of examples/churn's export
    weeks = [line for line in table[3:] if line.strip()]
    assert [w.split()[0] for w in weeks] == [
        "2026-03-30..2026-04-06",
        "2026-04-06..2026-04-13",
        "2026-04-13..2026-04-20",
        "2026-04-20..2026-04-27",
    ]
    assert [w.split()[1:3] for w in weeks] == [["684", "passed"], ["699", "passed"], ["662", "passed"], ["698", "passed"]]
    # the price rise from week 7 (2026-04-13) is drift; the weeks before are not (week 8 is judged
    # against whichever champion drift_watch's retrain has made by then)
    assert ["DRIFT" in w for w in weeks[:3]] == [False, False, True], "\n".join(table)

    from include.config import load_settings
    from include.storage import Storage

    verdicts = Storage.from_settings(load_settings(config)).verdicts()
    assert len(verdicts) == 4 and {"monthly_fee", "plan", "tenure_months"} <= set(verdicts[2]["drifted"])


def test_a_second_bootstrap_starts_no_run_twice(up):
    folder, config, home, ports, _ = up
    from include.airflow_api import Airflow

    client = Airflow(f"http://127.0.0.1:{ports[0]}", "admin", admin_password(home))

    def started() -> dict[str, int]:
        return {dag: sum(r["dag_run_id"].startswith("bootstrap__") for r in client.runs_all(dag)) for dag in ("ingest", "retrain")}

    before = started()
    done = bootstrap(folder, config, home, ports)
    assert done.returncode == 0, done.stderr[-3000:]
    assert started() == before == {"ingest": 8, "retrain": 1}
