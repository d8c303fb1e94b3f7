"""The production topology on loopback (``make cluster``), from Debian and PyPI packages:

    postgres               PostgreSQL 15: Airflow's metadata DB, MLflow's store and its auth DB
    redis                  Redis 7 with a password: the Celery broker
    object-store           an S3-protocol server with its own keys (scripts/s3server.py; it stands
                           in for MinIO/S3): MLflow's artifacts, driftloop's storage and landing
    mlflow                 MLflow on Postgres, basic auth, artifacts proxied to the object store
    evidently              Evidently's UI (the model-health dashboard): writing needs its secret;
                           its open-source UI has no login, so reading is open (loopback only)
    airflow-api-server     Airflow 3.3 with the FAB auth manager (logins), CeleryExecutor
    airflow-scheduler, airflow-dag-processor, airflow-triggerer
    airflow-worker-1, airflow-worker-2
                           two Celery workers, named in each task instance's hostname

Every port is on 127.0.0.1 and below the kernel's ephemeral range (a port inside it can be taken
by the local end of any outgoing connection). State lives under ``.cluster/`` (git-ignored):
secrets generated at the first start (``secrets.env``, 0600), the data of each service, logs
(``run/<service>.log``), and ``credentials.env`` (0600): ``AIRFLOW_URL``, ``AIRFLOW_USER``,
``AIRFLOW_PASSWORD``, ``MLFLOW_URL``, ``MLFLOW_USER``, ``MLFLOW_PASSWORD``, ``EVIDENTLY_URL``, ``S3_ENDPOINT_URL`` (and
the store's keys). The driftloop config the cluster runs is ``.cluster/driftloop.yaml`` (the demo's,
with storage and landing on the object store), or the file given with ``--config``.

    python scripts/cluster.py start [--config FILE]      idempotent; prints the credentials
    python scripts/cluster.py stop                       stops everything, no process left behind
    python scripts/cluster.py status

``CLUSTER_HOME`` and ``CLUSTER_PORT_BASE`` (default 15000: MLflow 15000, Postgres 15432, Redis
16379, S3 19000, Airflow 18080, Evidently 18800 are shifted by base - 15000) let a second cluster run beside the
first (the tests use one of their own).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from base64 import b64encode
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import compose_env  # noqa: E402
from services import VENV_BIN, base_env, descendants, evidently_command, port_is_free, signal_all, stop_tree, write_private  # noqa: E402

PGBIN = Path("/usr/lib/postgresql/15/bin")
HOST = "127.0.0.1"
BUCKET = "driftloop"
REMOTE_LOGS = f"s3://{BUCKET}/airflow-logs"  # task logs, as in docker-compose.yaml
LOG_CONN_ID = "driftloop_object_store"
WORKERS = ("airflow-worker-1", "airflow-worker-2")
# the services, named as in docker-compose.yaml (tests/unit/test_compose.py compares the two)
SERVICES = (
    "postgres",
    "redis",
    "object-store",
    "mlflow",
    "evidently",
    "airflow-api-server",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    *WORKERS,
)
PROCESSES = [s for s in SERVICES if s not in ("postgres", "redis")]  # started here, with a pid file
WORKER_CONCURRENCY = 2  # two task processes per worker: four at once on a 2-core machine
MLFLOW_WORKER_USER = "driftloop-worker"
QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true", "GX_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}


def log(msg: str) -> None:
    print(f"[cluster {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    """Runs a command to its end; its output goes to a pipe (a daemon it starts must not keep it:
    ``pg_ctl`` gets ``-l``)."""
    done = subprocess.run(cmd, text=True, capture_output=True, stdin=subprocess.DEVNULL, **kw)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done


def read_env(path: Path) -> dict[str, str]:
    return compose_env.parse_env(path.read_text())


def env_text(values: dict[str, str]) -> str:
    return "".join(f"{k}={v}\n" for k, v in values.items())


def http(url: str, auth: tuple[str, str] | None = None, body: dict | None = None, method: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None, method=method)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    if auth:
        req.add_header("Authorization", "Basic " + b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def wait_for(what: str, check, timeout: float, hint: Path) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if check():
                return time.monotonic() - started
        except (OSError, ValueError, KeyError):  # a server that is still starting
            pass
        time.sleep(0.5)
    raise SystemExit(f"{what} did not come up within {timeout:.0f} s; see {hint}")


def postgres_can_reach(path: Path) -> bool:
    """Whether the ``postgres`` user can traverse every folder down to ``path``."""
    try:
        import pwd

        uid = pwd.getpwnam("postgres").pw_uid
    except KeyError:
        return False
    for folder in [*reversed(path.parents), path]:
        if not folder.exists():
            break
        info = folder.stat()
        if not (info.st_mode & stat.S_IXOTH or info.st_uid == uid):
            return False
    return True


def apt_install(packages: list[str], what: str) -> None:
    """Installs Debian packages when running as root (CI, a fresh machine); otherwise stops and
    says what to install.

    Raises:
        SystemExit: not root (the message names the command to run).
    """
    if os.geteuid() != 0:
        raise SystemExit(f"missing Debian packages: run `sudo apt-get install -y {' '.join(packages)}` ({what})")
    log(f"apt-get install {' '.join(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-qq"], env=env)
    run(["apt-get", "install", "-y", "-qq", *packages], env=env)


@dataclass
class Cluster:
    home: Path
    base: int = 15000
    config: Path | None = None
    # seconds after which a task whose worker died is failed (then retried); Airflow's default is 300
    heartbeat_timeout: int = 60
    # seconds after which a task still queued is sent again (Airflow's default, 600): a worker
    # killed outright takes the tasks it had already received from Redis with it, and the broker
    # hands them out again only after its visibility timeout (24 h); this is what brings them back
    queued_timeout: int = 600
    _secrets: dict[str, str] | None = field(default=None, init=False, repr=False)

    # -- where things are ------------------------------------------------------------------
    @property
    def ports(self) -> dict[str, int]:
        shift = self.base - 15000
        return {
            "postgres": 15432 + shift,
            "redis": 16379 + shift,
            "object-store": 19000 + shift,
            "mlflow": 15000 + shift,
            "evidently": 18800 + shift,
            "airflow": 18080 + shift,
        }

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def pg_data(self) -> Path:
        """Postgres' data folder: under the cluster's home when the ``postgres`` user can reach
        it, else under /var/lib/postgresql (a checkout below a private folder)."""
        inside = self.home / "pg"
        if os.geteuid() != 0 or postgres_can_reach(self.home.parent):
            return inside
        return Path("/var/lib/postgresql/driftloop") / hashlib.sha1(str(self.home.resolve()).encode()).hexdigest()[:12]

    @property
    def config_file(self) -> Path:
        return self.config or self.home / "driftloop.yaml"

    @property
    def airflow_url(self) -> str:
        return f"http://{HOST}:{self.ports['airflow']}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{HOST}:{self.ports['mlflow']}"

    @property
    def evidently_url(self) -> str:
        return f"http://{HOST}:{self.ports['evidently']}"

    @property
    def s3_url(self) -> str:
        return f"http://{HOST}:{self.ports['object-store']}"

    def secrets(self) -> dict[str, str]:
        """Every generated secret, made once at the first start (``secrets.env``, 0600) and read
        once per process. The same secrets, made the same way, as docker/.env's
        (``compose_env.SECRETS``; MinIO's root account is compose's alone)."""
        if self._secrets is None:
            path = self.home / "secrets.env"
            if path.exists():
                self._secrets = read_env(path)
                wanted = {name: make for name, make in compose_env.SECRETS.items() if name != "MINIO_ROOT_PASSWORD"}
                if added := {name: make() for name, make in wanted.items() if name not in self._secrets}:
                    # a home made by an older driftloop: the secrets of its new services are added
                    self._secrets.update(added)
                    write_private(path, env_text(self._secrets), replace=True)
            else:
                made = {name: make() for name, make in compose_env.SECRETS.items() if name != "MINIO_ROOT_PASSWORD"}
                write_private(path, env_text(made), replace=True)
                self._secrets = made
        return self._secrets

    def pg_url(self, user: str, db: str) -> str:
        return f"postgresql+psycopg2://{user}:{self.secrets()[f'PG_{user.upper()}_PASSWORD']}@{HOST}:{self.ports['postgres']}/{db}"

    def s3_env(self) -> dict[str, str]:
        """What s3fs, delta-rs, boto3 and MLflow read to reach the object store (no code needed)."""
        s = self.secrets()
        return {
            "AWS_ACCESS_KEY_ID": s["S3_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": s["S3_SECRET_ACCESS_KEY"],
            "AWS_ENDPOINT_URL": self.s3_url,
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true",  # delta-rs refuses http:// endpoints without it
        }

    def log_connection(self) -> str:
        """The Airflow connection the task log handler writes and reads with (JSON form)."""
        s = self.secrets()
        extra = {"endpoint_url": self.s3_url, "region_name": "us-east-1"}
        return json.dumps({"conn_type": "aws", "login": s["S3_ACCESS_KEY_ID"], "password": s["S3_SECRET_ACCESS_KEY"], "extra": extra})

    def client_env(self) -> dict[str, str]:
        """What a driftloop process needs to work against this cluster: the config, the object
        store, and MLflow as the workers' user (their own user, not the admin)."""
        s = self.secrets()
        return {
            **self.s3_env(),
            **QUIET,
            "DRIFTLOOP_CONFIG": str(self.config_file),
            "MLFLOW_TRACKING_URI": self.mlflow_url,
            "MLFLOW_TRACKING_USERNAME": MLFLOW_WORKER_USER,
            "MLFLOW_TRACKING_PASSWORD": s["MLFLOW_WORKER_PASSWORD"],
            "MLFLOW_PUBLIC_URL": self.mlflow_url,
            "EVIDENTLY_URL": self.evidently_url,
            "EVIDENTLY_PUBLIC_URL": self.evidently_url,
            "EVIDENTLY_SECRET": s["EVIDENTLY_SECRET"],
        }

    def airflow_env(self) -> dict[str, str]:
        """The environment of every Airflow process (``airflow.env``, 0600)."""
        s = self.secrets()
        home = self.home / "airflow"
        return base_env(
            **self.client_env(),
            AIRFLOW_HOME=str(home),
            AIRFLOW__CORE__EXECUTOR="CeleryExecutor",
            AIRFLOW__CORE__AUTH_MANAGER="airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager",
            AIRFLOW__CORE__FERNET_KEY=s["AIRFLOW_FERNET_KEY"],
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.airflow_url}/execution/",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=self.pg_url("airflow", "airflow"),  # the async URL (+asyncpg) is derived
            AIRFLOW__CELERY__BROKER_URL=f"redis://:{s['REDIS_PASSWORD']}@{HOST}:{self.ports['redis']}/0",
            AIRFLOW__CELERY__RESULT_BACKEND="db+" + self.pg_url("airflow", "airflow"),
            AIRFLOW__CELERY__WORKER_CONCURRENCY=str(WORKER_CONCURRENCY),
            AIRFLOW__API__HOST=HOST,
            AIRFLOW__API__PORT=str(self.ports["airflow"]),
            AIRFLOW__API__BASE_URL=self.airflow_url,
            AIRFLOW__API__SECRET_KEY=s["AIRFLOW_API_SECRET_KEY"],
            AIRFLOW__API_AUTH__JWT_SECRET=s["AIRFLOW_JWT_SECRET"],
            AIRFLOW__LOGGING__BASE_LOG_FOLDER=str(home / "logs"),
            # task logs go to the object store when a task ends; the UI reads them from there, so a
            # log outlives its worker (the amazon provider's S3TaskHandler)
            AIRFLOW__LOGGING__REMOTE_LOGGING="True",
            AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER=REMOTE_LOGS,
            AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID=LOG_CONN_ID,
            **{f"AIRFLOW_CONN_{LOG_CONN_ID.upper()}": self.log_connection()},
            # new DAG files are listed every refresh_interval (300 s by default)
            AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="30",
            # a task whose worker died is noticed after this long (300 s by default), then retried
            AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT=str(self.heartbeat_timeout),
            AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT=str(self.queued_timeout),
            AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL=str(min(120, max(10, self.queued_timeout // 6))),
            AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME="0.5",
        )

    # -- processes ---------------------------------------------------------------------------
    def pid(self, name: str) -> int | None:
        path = self.run_dir / f"{name}.pid"
        return int(path.read_text()) if path.exists() else None

    def alive(self, name: str) -> bool:
        pid = self.pid(name)
        return bool(pid) and bool(descendants(pid))

    def spawn(self, name: str, cmd: list[str], env: dict[str, str], restart: bool = True) -> None:
        """Starts a service in a session of its own (its pid is its group id), logging to
        ``run/<name>.log``; with ``restart``, under ``supervise`` (started again whenever it
        exits, as ``restart: always`` does in docker-compose.yaml)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.alive(name):
            log(f"{name}: already running")
            return
        if restart:
            cmd = [str(VENV_BIN / "python"), str(Path(__file__).resolve()), "supervise", "--", *cmd]
        with open(self.run_dir / f"{name}.log", "ab") as out:
            proc = subprocess.Popen(
                cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.home
            )
        (self.run_dir / f"{name}.pid").write_text(str(proc.pid))

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Fault injection: the service and every process it started die at once (a machine dies)."""
        pid = self.pid(name)
        if pid:
            signal_all(descendants(pid), sig)

    def stop_process(self, name: str, grace: float = 30) -> None:
        pid = self.pid(name)
        if pid is None:
            return
        if killed := stop_tree(pid, grace):  # a Celery worker given SIGTERM finishes its tasks first
            log(f"{name}: {killed} process(es) still alive after {grace:.0f} s: killed")
        (self.run_dir / f"{name}.pid").unlink(missing_ok=True)
        log(f"{name}: stopped")

    # -- postgres ----------------------------------------------------------------------------
    def as_postgres(self, cmd: list[str]) -> subprocess.CompletedProcess:
        return run(["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd)

    def start_postgres(self) -> None:
        data, s = self.pg_data, self.secrets()
        if not (data / "PG_VERSION").exists():
            data.mkdir(parents=True, exist_ok=True)
            pwfile = data.parent / f".{data.name}.pw"
            write_private(pwfile, s["PG_SUPERUSER_PASSWORD"] + "\n", replace=True)
            if os.geteuid() == 0:
                shutil.chown(data, "postgres", "postgres")
                shutil.chown(pwfile, "postgres", "postgres")
            os.chmod(data, 0o700)
            try:
                self.as_postgres(
                    [str(PGBIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth-local=peer", "--auth-host=scram-sha-256",
                     f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8"]
                )  # fmt: skip
            finally:
                pwfile.unlink()
            with open(data / "postgresql.conf", "a") as conf:
                conf.write("\ninclude_if_exists = 'driftloop.conf'\n")
        conf = data / "driftloop.conf"  # rewritten at every start: the port may change
        conf.write_text(
            f"listen_addresses = '{HOST}'\nport = {self.ports['postgres']}\nunix_socket_directories = '{data}'\nmax_connections = 200\n"
        )
        if os.geteuid() == 0:
            shutil.chown(conf, "postgres", "postgres")
        if not port_is_free(self.ports["postgres"]) and (data / "postmaster.pid").exists():
            log("postgres: already running")
        else:
            self.as_postgres([str(PGBIN / "pg_ctl"), "-D", str(data), "-l", str(data / "server.log"), "-w", "-t", "60", "start"])
            log(f"postgres: up on {HOST}:{self.ports['postgres']}")
        psql = [str(PGBIN / "psql"), "-h", str(data), "-p", str(self.ports["postgres"]), "-U", "postgres", "-d", "postgres"]
        psql += ["-v", "ON_ERROR_STOP=1", "-qtA"]
        roles = set(self.as_postgres([*psql, "-c", "SELECT rolname FROM pg_roles"]).stdout.split())
        dbs = set(self.as_postgres([*psql, "-c", "SELECT datname FROM pg_database"]).stdout.split())
        for role in ("airflow", "mlflow"):  # passwords re-applied: secrets.env is the truth
            verb = "ALTER" if role in roles else "CREATE"
            self.as_postgres([*psql, "-c", f"{verb} ROLE {role} LOGIN PASSWORD '{s[f'PG_{role.upper()}_PASSWORD']}'"])
        for db, owner in (("airflow", "airflow"), ("mlflow", "mlflow"), ("mlflow_auth", "mlflow")):
            if db not in dbs:
                self.as_postgres([*psql, "-c", f"CREATE DATABASE {db} OWNER {owner}"])

    def stop_postgres(self) -> None:
        data = self.pg_data
        if (data / "postmaster.pid").exists():
            self.as_postgres([str(PGBIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])
            log("postgres: stopped")

    def restart_postgres(self) -> None:
        """Fault injection: a fast restart (connections cut) under whatever runs."""
        data = self.pg_data
        self.as_postgres([str(PGBIN / "pg_ctl"), "-D", str(data), "-l", str(data / "server.log"), "-m", "fast", "-w", "restart"])

    # -- redis -------------------------------------------------------------------------------
    def start_redis(self) -> None:
        folder = self.home / "redis"
        write_private(
            folder / "redis.conf",
            f"bind {HOST}\nport {self.ports['redis']}\nprotected-mode yes\nrequirepass {self.secrets()['REDIS_PASSWORD']}\n"
            f"dir {folder}\ndaemonize yes\npidfile {folder / 'redis.pid'}\nlogfile {folder / 'redis.log'}\n"
            'appendonly yes\nappendfsync everysec\nsave ""\n',
            replace=True,
        )
        if not port_is_free(self.ports["redis"]):
            log("redis: already running")
            return
        run(["redis-server", str(folder / "redis.conf")])
        wait_for("redis", lambda: not port_is_free(self.ports["redis"]), 20, folder / "redis.log")
        log(f"redis: up on {HOST}:{self.ports['redis']}")

    def stop_redis(self) -> None:
        pidfile = self.home / "redis" / "redis.pid"
        if pidfile.exists():
            pid = int(pidfile.read_text())
            signal_all({pid}, signal.SIGTERM)
            deadline = time.monotonic() + 20
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            log("redis: stopped")

    # -- object store ------------------------------------------------------------------------
    def start_object_store(self) -> None:
        if self.alive("object-store") and not port_is_free(self.ports["object-store"]):
            log("object-store: already running")
            return
        s = self.secrets()
        logfile = self.run_dir / "object-store.log"
        offset = logfile.stat().st_size if logfile.exists() else 0
        env = {**os.environ, **QUIET, "S3_ACCESS_KEY_ID": s["S3_ACCESS_KEY_ID"], "S3_SECRET_ACCESS_KEY": s["S3_SECRET_ACCESS_KEY"]}
        cmd = [str(VENV_BIN / "python"), str(ROOT / "scripts" / "s3server.py"), "--host", HOST, "--port", str(self.ports["object-store"])]
        # not supervised: its snapshot is written on a clean stop only, so a crashed store must be looked at
        self.spawn("object-store", [*cmd, "--state-dir", str(self.home / "s3"), "--bucket", BUCKET], env, restart=False)
        wait_for("object store", lambda: b"s3server ready" in logfile.read_bytes()[offset:], 60, logfile)
        log(f"object-store: up on {self.s3_url} (bucket {BUCKET})")

    # -- evidently ---------------------------------------------------------------------------
    def start_evidently(self) -> None:
        """Evidently's UI, the model-health dashboard: its workspace under the cluster's home, its
        write secret in its environment (the workers send it; reading is open, so loopback)."""
        env = {**os.environ, **QUIET, "EVIDENTLY_SECRET": self.secrets()["EVIDENTLY_SECRET"]}
        cmd = evidently_command(self.home / "evidently" / "workspace", self.ports["evidently"], HOST)
        self.spawn("evidently", cmd, env)
        wait_for("Evidently UI", lambda: http(f"{self.evidently_url}/api/version")[0] == 200, 120, self.run_dir / "evidently.log")
        log(f"evidently: up on {self.evidently_url} (writing needs EVIDENTLY_SECRET)")

    # -- mlflow ------------------------------------------------------------------------------
    def start_mlflow(self) -> None:
        s = self.secrets()
        ini = self.home / "mlflow" / "basic_auth.ini"
        write_private(
            ini,
            "[mlflow]\ndefault_permission = READ\n"
            f"database_uri = {self.pg_url('mlflow', 'mlflow_auth')}\n"
            f"admin_username = admin\nadmin_password = {s['MLFLOW_ADMIN_PASSWORD']}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            # without a cache every request runs PBKDF2 on the password
            "auth_cache_ttl_seconds = 60\n",
            replace=True,
        )
        env = {
            **os.environ,
            **QUIET,
            **self.s3_env(),
            "MLFLOW_S3_ENDPOINT_URL": self.s3_url,
            "MLFLOW_AUTH_CONFIG_PATH": str(ini),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": s["MLFLOW_FLASK_SERVER_SECRET_KEY"],
            # else a job runner and six huey consumers start: about 2 GB for nothing driftloop uses
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
        cmd = [str(VENV_BIN / "mlflow"), "server", "--backend-store-uri", self.pg_url("mlflow", "mlflow"), "--serve-artifacts"]
        cmd += ["--artifacts-destination", f"s3://{BUCKET}/mlflow", "--app-name", "basic-auth"]
        self.spawn("mlflow", [*cmd, "--host", HOST, "--port", str(self.ports["mlflow"]), "--workers", "2"], env)
        wait_for("MLflow", lambda: http(f"{self.mlflow_url}/health")[0] == 200, 180, self.run_dir / "mlflow.log")
        admin, worker = ("admin", s["MLFLOW_ADMIN_PASSWORD"]), (MLFLOW_WORKER_USER, s["MLFLOW_WORKER_PASSWORD"])
        if http(f"{self.mlflow_url}/api/2.0/mlflow/users/get?username={worker[0]}", admin)[0] != 200:
            status, body = http(f"{self.mlflow_url}/api/2.0/mlflow/users/create", admin, {"username": worker[0], "password": worker[1]})
            if status != 200:
                raise SystemExit(f"MLflow: creating user {worker[0]} failed: {status} {body[:300]!r}")
        else:  # secrets.env is the truth: re-apply the password
            change = {"username": worker[0], "password": worker[1]}
            status, body = http(f"{self.mlflow_url}/api/2.0/mlflow/users/update-password", admin, change, method="PATCH")
            if status != 200:
                raise SystemExit(f"MLflow: resetting the password of {worker[0]} failed: {status} {body[:300]!r}")
        for kind in ("experiment", "registered_model"):  # the workers manage every experiment and model
            grant = {"username": worker[0], "resource_type": kind, "resource_id": "*", "permission": "MANAGE"}
            status, body = http(f"{self.mlflow_url}/api/3.0/mlflow/users/permissions/grant", admin, grant)
            if status != 200 and b"RESOURCE_ALREADY_EXISTS" not in body:
                raise SystemExit(f"MLflow: granting {kind} to {worker[0]} failed: {status} {body[:300]!r}")
        log(f"mlflow: up on {self.mlflow_url} (basic auth; workers log in as {worker[0]})")

    # -- airflow -----------------------------------------------------------------------------
    def start_airflow(self) -> None:
        s, env = self.secrets(), self.airflow_env()
        write_private(
            self.home / "airflow.env", env_text({k: v for k, v in env.items() if k not in os.environ or os.environ[k] != v}), replace=True
        )
        airflow = str(VENV_BIN / "airflow")
        if not self.alive("airflow-api-server"):
            run([airflow, "db", "migrate"], env=env)  # with the FAB auth manager, FAB's tables too
            users = run([airflow, "users", "list", "--output", "json"], env=env).stdout
            if '"admin"' in users:
                run([airflow, "users", "reset-password", "--username", "admin", "--password", s["AIRFLOW_ADMIN_PASSWORD"]], env=env)
            else:
                run(
                    [airflow, "users", "create", "--username", "admin", "--password", s["AIRFLOW_ADMIN_PASSWORD"], "--firstname",
                     "Admin", "--lastname", "Driftloop", "--role", "Admin", "--email", "admin@localhost"],
                    env=env,
                )  # fmt: skip
            # before any task: a task in a missing pool is never scheduled, silently
            run([str(VENV_BIN / "python"), str(ROOT / "plugins" / "driftloop_airflow.py")], env=env, cwd=ROOT)
        self.spawn("airflow-api-server", [airflow, "api-server", "--workers", "1"], env)
        self.spawn("airflow-scheduler", [airflow, "scheduler"], env)
        self.spawn("airflow-dag-processor", [airflow, "dag-processor"], env)
        # log servers bind every interface (not configurable in 3.3): off; the logs are on a shared disk
        self.spawn("airflow-triggerer", [airflow, "triggerer", "--skip-serve-logs"], env)
        for worker in WORKERS:
            self.start_worker(worker, wait=False)

        def healthy() -> bool:
            status, body = http(f"{self.airflow_url}/api/v2/monitor/health")
            report = json.loads(body)
            return status == 200 and all(
                report[k]["status"] == "healthy" for k in ("metadatabase", "scheduler", "triggerer", "dag_processor")
            )

        wait_for("Airflow", healthy, 240, self.run_dir / "airflow-api-server.log")
        for worker in WORKERS:
            logfile = self.run_dir / f"{worker}.log"
            wait_for(worker, lambda logfile=logfile: b" ready." in logfile.read_bytes(), 180, logfile)
        log(f"airflow: up on {self.airflow_url} (FAB logins, CeleryExecutor, {len(WORKERS)} workers)")

    def start_worker(self, worker: str, wait: bool = True) -> None:
        """Starts one Celery worker (``airflow-worker-<n>``), named ``worker-<n>@<host>`` in the
        hostname of the task instances it runs (both workers share one machine name)."""
        n = worker.rsplit("-", 1)[1]
        env = {
            **self.airflow_env(),
            "DRIFTLOOP_WORKER_NAME": f"worker-{n}",
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "driftloop_airflow.worker_hostname",
            "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
        }
        logfile = self.run_dir / f"{worker}.log"
        offset = logfile.stat().st_size if logfile.exists() else 0
        cmd = [str(VENV_BIN / "airflow"), "celery", "worker", "--celery-hostname", f"worker-{n}@%h"]
        self.spawn(worker, [*cmd, "--concurrency", str(WORKER_CONCURRENCY), "--skip-serve-logs"], env)
        if wait:
            wait_for(worker, lambda: b" ready." in logfile.read_bytes()[offset:], 180, logfile)

    # -- the whole ---------------------------------------------------------------------------
    def write_config(self) -> None:
        """The demo's config with storage and landing on the object store (unless ``--config``)."""
        if self.config is not None or self.config_file.exists():
            return
        import yaml

        raw = yaml.safe_load((ROOT / "include" / "demo.yaml").read_text())
        raw["storage"] = f"s3://{BUCKET}/demo"
        raw["data"]["landing"] = f"s3://{BUCKET}/demo-landing"
        self.config_file.write_text(
            "# the cluster's driftloop config (scripts/cluster.py): the demo's, on the object store\n" + yaml.safe_dump(raw)
        )

    def credentials(self) -> dict[str, str]:
        s = self.secrets()
        return {
            "AIRFLOW_URL": self.airflow_url,
            "AIRFLOW_USER": "admin",
            "AIRFLOW_PASSWORD": s["AIRFLOW_ADMIN_PASSWORD"],
            "MLFLOW_URL": self.mlflow_url,
            "MLFLOW_USER": "admin",
            "MLFLOW_PASSWORD": s["MLFLOW_ADMIN_PASSWORD"],
            "EVIDENTLY_URL": self.evidently_url,
            "S3_ENDPOINT_URL": self.s3_url,
            "S3_BUCKET": BUCKET,
            "AWS_ACCESS_KEY_ID": s["S3_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": s["S3_SECRET_ACCESS_KEY"],
            "DRIFTLOOP_CONFIG": str(self.config_file),
        }

    def preflight(self) -> None:
        missing = [
            pkg for pkg, exe in (("postgresql", PGBIN / "initdb"), ("redis-server", Path("/usr/bin/redis-server"))) if not exe.exists()
        ]
        if missing:
            apt_install(missing, "PostgreSQL 15, Redis 7")
        ours = {
            "postgres": (self.pg_data / "postmaster.pid").exists(),
            "redis": (self.home / "redis" / "redis.pid").exists(),
            "object-store": self.alive("object-store"),
            "mlflow": self.alive("mlflow"),
            "evidently": self.alive("evidently"),
            "airflow": self.alive("airflow-api-server"),
        }
        busy = [f"{name} {port}" for name, port in self.ports.items() if not port_is_free(port) and not ours[name]]
        if busy:
            raise SystemExit(f"ports taken by something else: {', '.join(busy)} (CLUSTER_PORT_BASE moves them all)")

    def start(self) -> dict[str, str]:
        started = time.monotonic()
        self.home.mkdir(parents=True, exist_ok=True)
        os.chmod(self.home, 0o755)  # postgres, another user, goes through it
        self.preflight()
        self.secrets()
        self.write_config()
        self.start_postgres()
        self.start_redis()
        self.start_object_store()
        self.start_mlflow()
        self.start_evidently()
        self.start_airflow()
        creds = self.credentials()
        write_private(self.home / "credentials.env", env_text(creds), replace=True)
        log(f"cluster up in {time.monotonic() - started:.0f} s")
        return creds

    def stop(self) -> None:
        for name in reversed(PROCESSES):  # workers first (warm shutdown), the object store last
            self.stop_process(name, grace=90 if name in WORKERS else 30)
        self.stop_redis()
        self.stop_postgres()

    def status(self) -> dict[str, bool]:
        up = {name: self.alive(name) for name in PROCESSES}
        up["postgres"] = not port_is_free(self.ports["postgres"])
        up["redis"] = not port_is_free(self.ports["redis"])
        return {name: up[name] for name in SERVICES}


def supervise(cmd: list[str]) -> int:
    """Runs ``cmd``, and again whenever it exits without having been asked to stop (SIGTERM or
    SIGINT, passed on to it). Airflow's scheduler, for one, exits when its database goes away for a
    moment (a Postgres restart); a supervisor brings it back, as ``restart: always`` does under
    compose. Restarts back off from 1 s to 30 s while the command keeps dying within a minute."""
    stopping = False
    child: subprocess.Popen | None = None

    def stop(signum, _frame) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    delay = 1.0
    while True:
        started = time.monotonic()
        child = subprocess.Popen(cmd)
        code = child.wait()
        if stopping:
            return code
        delay = 1.0 if time.monotonic() - started > 60 else min(delay * 2, 30.0)
        log(f"{' '.join(Path(c).name for c in cmd[:3])} exited with {code}: started again in {delay:.0f} s")
        time.sleep(delay)
        if stopping:
            return code


def from_env(config: Path | None = None) -> Cluster:
    home = Path(os.environ.get("CLUSTER_HOME", ROOT / ".cluster")).resolve()
    return Cluster(home, int(os.environ.get("CLUSTER_PORT_BASE", 15000)), config.resolve() if config else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    if sys.argv[1:2] == ["supervise"]:  # python scripts/cluster.py supervise -- CMD...
        sys.exit(supervise(sys.argv[sys.argv.index("--") + 1 :]))
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--config", type=Path, help="the driftloop config the cluster runs (default: the demo's, on the object store)")
    args = parser.parse_args()
    cluster = from_env(args.config)
    if args.action == "stop":
        cluster.stop()
    elif args.action == "status":
        for name, up in cluster.status().items():
            print(f"{name:24s} {'up' if up else 'down'}")
    else:
        creds = cluster.start()
        print(f"\ncredentials (also in {cluster.home / 'credentials.env'}, mode 0600):")
        print(env_text(creds), end="")
        print(f"\nAirflow UI {creds['AIRFLOW_URL']}  ({creds['AIRFLOW_USER']} / {creds['AIRFLOW_PASSWORD']})")
        print(f"MLflow UI  {creds['MLFLOW_URL']}  ({creds['MLFLOW_USER']} / {creds['MLFLOW_PASSWORD']})")
        print("make demo CLUSTER=1 plays the demo on it; make cluster-stop stops it.")


if __name__ == "__main__":
    main()
