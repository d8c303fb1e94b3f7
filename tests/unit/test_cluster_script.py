"""The cluster's process handling (scripts/cluster.py), on real processes: the supervisor that
starts a service again when it dies (as `restart: always` under compose) and stops with it, and the
process tree a stop or a fault injection reaches (a task process in a group of its own included)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT

if str(ROOT / "scripts") not in sys.path:
    sys.path.insert(0, str(ROOT / "scripts"))

FLAKY = """
import pathlib, sys, time
counter = pathlib.Path(sys.argv[1])
runs = int(counter.read_text()) if counter.exists() else 0
counter.write_text(str(runs + 1))
if runs == 0:
    sys.exit(3)  # the first run dies, as a scheduler whose database went away
time.sleep(120)
"""


def _wait(check, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.1)


def test_the_supervisor_starts_a_dead_service_again_and_stops_with_it(tmp_path):
    counter = tmp_path / "runs"
    cmd = [sys.executable, str(ROOT / "scripts" / "cluster.py"), "supervise", "--", sys.executable, "-c", FLAKY, str(counter)]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait(lambda: counter.exists() and counter.read_text() == "2")
        os.killpg(proc.pid, signal.SIGTERM)  # as stop_process does
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert counter.read_text() == "2"  # restarted once, not again after the stop
    assert "exited with 3: started again" in proc.stdout.read()


def test_the_tree_of_a_service_includes_task_processes_in_groups_of_their_own():
    from services import descendants, living

    # a "worker" whose "task" moves itself to a new process group, as Airflow's task supervisor does
    worker = subprocess.Popen(
        [sys.executable, "-c", "import os, subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import os, time; os.setpgid(0, 0); time.sleep(60)']); time.sleep(60)"],
        start_new_session=True,
    )  # fmt: skip
    try:
        _wait(lambda: len(descendants(worker.pid)) == 2)
        task = (descendants(worker.pid) - {worker.pid}).pop()
        # the task leaves the worker's group once its interpreter has started (seen in CI: found
        # before it had), and killpg(worker) would then miss it
        _wait(lambda: os.getpgid(task) == task)
        tree = descendants(worker.pid)
        assert tree == {worker.pid, task}
        for pid in tree:
            os.kill(pid, signal.SIGKILL)
        _wait(lambda: not living(task))
    finally:
        worker.kill()
        worker.wait()


def test_ports_move_together_and_stay_below_the_ephemeral_range(tmp_path):
    from cluster import Cluster

    default, shifted = Cluster(tmp_path).ports, Cluster(tmp_path, base=25000).ports
    assert default == {"postgres": 15432, "redis": 16379, "object-store": 19000, "mlflow": 15000, "airflow": 18080, "evidently": 18800}
    assert all(shifted[k] - default[k] == 10000 for k in default)
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    assert all(port < low for port in [*default.values(), *shifted.values()])


@pytest.mark.skipif(os.geteuid() != 0, reason="the postgres user's reach matters when the cluster runs Postgres through runuser")
def test_postgres_data_goes_where_the_postgres_user_can_reach(tmp_path):
    from cluster import Cluster, postgres_can_reach

    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    os.chmod(private, 0o700)
    assert not postgres_can_reach(private / "x")
    assert Cluster(private / "home").pg_data.is_relative_to("/var/lib/postgresql/driftloop")
    assert Cluster(ROOT / ".cluster").pg_data == ROOT / ".cluster" / "pg" or not postgres_can_reach(ROOT)


def test_a_home_made_before_a_new_service_gains_its_secret_and_keeps_the_others(tmp_path):
    """A cluster home whose secrets.env predates the Evidently service: the missing secret is
    generated and added (0600), the existing ones are kept (Postgres and MLflow hold them)."""
    import stat

    from cluster import Cluster, env_text, read_env

    first = Cluster(tmp_path).secrets()
    older = {k: v for k, v in first.items() if k != "EVIDENTLY_SECRET"}
    (tmp_path / "secrets.env").write_text(env_text(older))
    again = Cluster(tmp_path).secrets()
    assert {k: again[k] for k in older} == older
    assert len(again["EVIDENTLY_SECRET"]) >= 32
    assert read_env(tmp_path / "secrets.env") == again
    assert stat.S_IMODE((tmp_path / "secrets.env").stat().st_mode) == 0o600
