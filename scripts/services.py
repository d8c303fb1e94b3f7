"""Starts and stops the local services of the demo and the end-to-end test: an MLflow tracking
server (SQLite backend, artifacts served by the server), Evidently's UI (the model-health
dashboard, a local workspace; writing needs a generated secret) and ``airflow standalone``
(scheduler, dag-processor, api-server, triggerer; LocalExecutor on SQLite).

SQLite lets one writer in at a time, and Airflow 3.3's api-server writes its audit log
(``action_logging``) synchronously from an async dependency, on its event loop. When another of its
requests holds the write lock and needs the loop to commit, the loop waits out SQLite's busy timeout
(5 s by default) and the API answers 500 "Database error". A longer timeout makes it worse: the whole
api-server, task heartbeats included, stalls for that long (a CI run lost 30 s waiting on a 60 s
timeout). So the timeout stays at its default and the demo's client repeats what is safe to repeat.
Postgres (docker-compose.yaml) has no such limit.

Homes live inside the project (git-ignored): ``.services/mlflow/``, ``.services/evidently/`` and ``.services/airflow/``,
unless a ``--home`` is given (the e2e test uses a temporary one). The Airflow admin password is generated
on first start and written to ``<home>/airflow/simple_auth_manager_passwords.json.generated``, readable
by its owner only, and so is Evidently's write secret (``<home>/evidently/secret``). Every server
listens on 127.0.0.1 only: neither SimpleAuthManager, an MLflow server without auth nor Evidently's
open-source UI (no login at all) is fit for an open network. Before ``airflow standalone`` starts, the metadata DB
is migrated and driftloop's pools are created (tasks in a missing pool are never scheduled).

    python scripts/services.py start [--home DIR] [--airflow-port 8080] [--mlflow-port 5500]
    python scripts/services.py stop  [--home DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def base_env(**extra: str) -> dict[str, str]:
    """This process's environment plus what every driftloop process needs: the checkout on the
    import path, Airflow pointed at its dags/ and plugins/, telemetry off (there is no network),
    and one OpenMP thread per process (see ``Services.env``)."""
    env = dict(os.environ)
    env.update(
        {
            "PATH": f"{VENV_BIN}:{env.get('PATH', '')}",
            "PYTHONPATH": f"{ROOT}:{ROOT / 'plugins'}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "GX_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            # One OpenMP thread per task: on a 2-core machine shared with the scheduler, the
            # api-server and MLflow, gradient boosting's spinning OpenMP workers slowed a fold
            # from 0.3 s to 26 s (seen in the demo).
            "OMP_NUM_THREADS": "1",
        }
    )
    env.update(extra)
    return env


@dataclass
class Services:
    home: Path
    airflow_port: int
    mlflow_port: int
    config: Path
    evidently_port: int = 8800

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    @property
    def mlflow_home(self) -> Path:
        return self.home / "mlflow"

    @property
    def evidently_home(self) -> Path:
        return self.home / "evidently"

    @property
    def evidently_url(self) -> str:
        return f"http://127.0.0.1:{self.evidently_port}"

    def evidently_secret(self) -> str:
        """The Evidently UI's write secret: generated on first use, kept readable by its owner only."""
        path = self.evidently_home / "secret"
        write_private(path, secrets.token_urlsafe(16))
        return path.read_text()

    @property
    def airflow_url(self) -> str:
        return f"http://127.0.0.1:{self.airflow_port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    stop_command = "make stop"
    mlflow_login = ""  # no login on the local MLflow (loopback only)

    @property
    def password_file(self) -> Path:
        return self.airflow_home / "simple_auth_manager_passwords.json.generated"

    def password(self) -> str:
        return json.loads(self.password_file.read_text())["admin"]

    def env(self) -> dict[str, str]:
        return base_env(
            DRIFTLOOP_CONFIG=str(self.config),
            MLFLOW_TRACKING_URI=self.mlflow_url,
            EVIDENTLY_URL=self.evidently_url,
            EVIDENTLY_SECRET=self.evidently_secret(),
            AIRFLOW_HOME=str(self.airflow_home),
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
            AIRFLOW__CORE__PARALLELISM="8",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin",
            AIRFLOW__API__PORT=str(self.airflow_port),
            # the api-server (UI, REST and execution API) listens on every interface by default
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__BASE_URL=self.airflow_url,
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.airflow_url}/execution/",
            AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
            AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL="30",
            AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME="0.5",
            AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
        )


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status < 500:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(1)
    hint = f"; see {log}" if log else ""
    raise RuntimeError(f"{what} did not answer at {url} within {timeout:.0f} s{hint}")


def _spawn(cmd: list[str], env: dict, log: Path, pidfile: Path) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT, start_new_session=True
        )
    pidfile.write_text(str(proc.pid))
    return proc.pid


def mlflow_command(home: Path, port: int, workers: int = 2) -> list[str]:
    """``mlflow server`` on loopback: SQLite backend store, artifacts served (proxied) by the server."""
    return [
        str(VENV_BIN / "mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{home / 'mlflow.db'}",
        "--artifacts-destination",
        str(home / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]


def evidently_command(workspace: Path, port: int, host: str = "127.0.0.1") -> list[str]:
    """``evidently ui``, the model-health dashboard, on a local workspace. Writing needs the secret
    it reads from ``EVIDENTLY_SECRET`` in its environment (off the command line, which any local
    user can read); reading needs nothing: Evidently's open-source UI has no login."""
    return [str(VENV_BIN / "evidently"), "ui", "--workspace", str(workspace), "--host", host, "--port", str(port)]


def start_mlflow(svc: Services) -> None:
    svc.mlflow_home.mkdir(parents=True, exist_ok=True)
    if not port_is_free(svc.mlflow_port):
        raise RuntimeError(f"port {svc.mlflow_port} is taken: stop what runs there or choose --mlflow-port")
    log = svc.mlflow_home / "server.log"
    _spawn(mlflow_command(svc.mlflow_home, svc.mlflow_port), svc.env(), log, svc.home / "mlflow.pid")
    wait_http(f"{svc.mlflow_url}/health", 120, "MLflow", log)


def start_evidently(svc: Services) -> None:
    svc.evidently_home.mkdir(parents=True, exist_ok=True)
    if not port_is_free(svc.evidently_port):
        raise RuntimeError(f"port {svc.evidently_port} is taken: stop what runs there or choose --evidently-port")
    log = svc.evidently_home / "server.log"
    cmd = evidently_command(svc.evidently_home / "workspace", svc.evidently_port)
    _spawn(cmd, svc.env(), log, svc.home / "evidently.pid")
    wait_http(f"{svc.evidently_url}/api/version", 120, "Evidently UI", log)


def write_private(path: Path, text: str, replace: bool = False) -> bool:
    """Writes ``text`` to a file that only its owner may read (mode 0600 from creation: a file
    written first and narrowed after is readable by others in between). Without ``replace`` the
    file must be new: returns False, writing nothing, when it exists. With ``replace`` it is
    written beside and moved over the old one, so a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    target = path.with_name(f".{path.name}.tmp") if replace else path
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if replace else os.O_EXCL), 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as out:
        out.write(text)
    if replace:
        os.replace(target, path)
    return True


def prepare_airflow(svc: Services, log: Path) -> None:
    """Migrates the metadata DB and creates driftloop's pools (``driftloop_airflow.POOLS``), which
    ``airflow standalone`` would not: a task in a missing pool is never scheduled."""
    env = svc.env()
    with open(log, "ab") as out:
        for cmd in ([str(VENV_BIN / "airflow"), "db", "migrate"], [sys.executable, str(ROOT / "plugins" / "driftloop_airflow.py")]):
            done = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT, timeout=600)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd[-2:])} failed ({done.returncode}); see {log}")


def start_airflow(svc: Services) -> None:
    svc.airflow_home.mkdir(parents=True, exist_ok=True)
    if not port_is_free(svc.airflow_port):
        raise RuntimeError(f"port {svc.airflow_port} is taken: stop what runs there or choose --airflow-port")
    write_private(svc.password_file, json.dumps({"admin": secrets.token_urlsafe(12)}))
    log = svc.airflow_home / "standalone.log"
    prepare_airflow(svc, log)
    _spawn([str(VENV_BIN / "airflow"), "standalone"], svc.env(), log, svc.home / "airflow.pid")
    wait_http(f"{svc.airflow_url}/api/v2/monitor/health", 240, "Airflow", log)


def start(svc: Services) -> None:
    svc.home.mkdir(parents=True, exist_ok=True)
    start_mlflow(svc)
    start_evidently(svc)
    start_airflow(svc)


def descendants(pid: int) -> set[int]:
    """The living processes of group ``pid`` and all their descendants. Airflow 3's task supervisor
    puts each task process in a group of its own, so signalling a service's group misses its tasks."""
    procs = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[0] != "Z":
                procs[int(entry.name)] = (int(fields[1]), int(fields[2]))  # ppid, pgrp
    found = {p for p, (_, group) in procs.items() if group == pid}
    while more := {p for p, (parent, _) in procs.items() if parent in found and p not in found}:
        found |= more
    return found


def living(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def signal_all(pids: set[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def stop_tree(pid: int, grace: float) -> int:
    """Stops a service started in a session of its own (``pid`` leads its group): SIGTERM to the
    group, then SIGKILL to whatever of its tree still runs after ``grace`` seconds, task processes
    in groups of their own included. Returns how many processes had to be killed."""
    tree = descendants(pid)
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace
    while tree and time.monotonic() < deadline:
        time.sleep(0.3)
        tree = {p for p in tree if living(p)}
    left = tree | descendants(pid)
    signal_all(left, signal.SIGKILL)
    return len(left)


def stop(home: Path) -> list[str]:
    """Stops what ``start`` started under ``home`` (whole process trees). Returns what it stopped."""
    stopped = []
    for name in ("airflow", "mlflow", "evidently"):
        pidfile = home / f"{name}.pid"
        if not pidfile.exists():
            continue
        stop_tree(int(pidfile.read_text()), grace=15)
        pidfile.unlink()
        stopped.append(name)
    return stopped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["start", "stop", "up"])
    parser.add_argument("--home", type=Path, default=ROOT / ".services")
    parser.add_argument("--airflow-port", type=int, default=8080)
    parser.add_argument("--mlflow-port", type=int, default=5500)
    parser.add_argument("--evidently-port", type=int, default=8800)
    parser.add_argument("--config", type=Path, default=ROOT / "include" / "demo.yaml")
    args = parser.parse_args()
    if args.action == "stop":
        stopped = stop(args.home)
        print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
        return
    svc = Services(args.home.resolve(), args.airflow_port, args.mlflow_port, args.config.resolve(), args.evidently_port)
    if args.action == "up":
        up(svc)
        return
    start(svc)
    print(f"Airflow {svc.airflow_url} (admin / {svc.password()}), MLflow {svc.mlflow_url}, model health (Evidently UI) {svc.evidently_url}")


def up(svc: Services) -> None:
    """``make up CONFIG=FILE``: the local services on a team's own config, its DAGs unpaused (their
    schedules on), no simulator; prints where everything is and what to run next."""
    sys.path.insert(0, str(ROOT))
    from include.config import load_settings

    settings = load_settings(svc.config)  # a config error stops here, before anything starts
    stopped = stop(svc.home)
    if stopped:
        print(f"stopped the running {' and '.join(stopped)} first")
    start(svc)
    print(
        f"""driftloop is up on {svc.config}
  Airflow   {svc.airflow_url}   user admin, password {svc.password()}  (kept in {svc.password_file})
  MLflow    {svc.mlflow_url}   experiments '{settings.name}', '{settings.name}-monitoring'; model '{settings.name}'
  Evidently {svc.evidently_url}   model health: project '{settings.name}', one snapshot per monitored interval
  landing   {settings.data.landing}   storage {settings.storage}
  schedules ingest {settings.schedule.ingest or "only when triggered"}, retrain {settings.schedule.retrain or "only when triggered"}

Next: start the loop on the files already landed (the first champion learns from the data before --until):
  export MLFLOW_TRACKING_URI={svc.mlflow_url}
  .venv/bin/driftloop bootstrap --config {svc.config} --until YYYY-MM-DD
`make stop` stops the services."""
    )


if __name__ == "__main__":
    main()
