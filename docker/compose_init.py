"""Start-up steps of docker-compose.yaml that run inside the driftloop image.

    python /opt/driftloop/docker/compose_init.py mlflow-server -- <mlflow server arguments>
    python /opt/driftloop/docker/compose_init.py airflow-init

``mlflow-server`` refuses placeholder secrets, writes MLflow's basic-auth ini (0600) from the
environment (admin password, auth database on Postgres), then becomes ``mlflow server`` with the
given arguments and the Host headers it must accept. ``airflow-init`` (one-shot) refuses
placeholder secrets, waits for Postgres, migrates Airflow's metadata DB, creates or resets the FAB
admin, creates driftloop's pools and gives the workers their own MLflow user (MANAGE on every
experiment and registered model). Every step can run again: a restart changes nothing, a new
password in docker/.env is applied.

Standard library only at import time: ``scripts/compose_env.py`` imports ``placeholder_problem``
from here on the host, so that the generator and the containers apply the same rule.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path
from urllib.parse import urlsplit

MIN_SECRET_LENGTH = 16
# Values people leave in place of a secret. A secret equal to one of these, or containing one of
# the longer markers, is refused whatever its length.
PLACEHOLDERS = frozenset(
    {"admin", "airflow", "changeme", "change-me", "change_me", "default", "minio", "minioadmin", "mlflow", "pass"}
    | {"passw0rd", "password", "postgres", "redis", "root", "secret", "test", "todo", "xxx"}
)
PLACEHOLDER_MARKERS = ("changeme", "change-me", "change_me", "changethis", "replace", "placeholder", "example", "your_", "your-")
HOW_TO_FIX = "generate docker/.env with `make env` (scripts/compose_env.py), or set a random value of 16 characters or more"

PLUGINS = Path("/opt/driftloop/plugins")
AIRFLOW_ADMIN_EMAIL = "admin@localhost"
AUTH_INI = Path("/tmp/driftloop-mlflow/basic_auth.ini")


def placeholder_problem(value: str | None) -> str | None:
    """Why ``value`` cannot be a secret (empty, a well-known placeholder, too short), or None."""
    if value is None or not value.strip():
        return "is empty"
    lowered = value.strip().lower()
    if lowered in PLACEHOLDERS or any(marker in lowered for marker in PLACEHOLDER_MARKERS):
        return f"is a placeholder ({value!r})"
    if len(set(lowered)) == 1:
        return "repeats a single character"
    if len(value) < MIN_SECRET_LENGTH:
        return f"is shorter than {MIN_SECRET_LENGTH} characters"
    return None


def refuse_placeholders(secrets: dict[str, str | None], who: str) -> None:
    """Stops with one line per bad secret (named as in docker/.env) when any is a placeholder."""
    bad = [f"  - {name} {problem}" for name, value in secrets.items() if (problem := placeholder_problem(value))]
    if bad:
        raise SystemExit(f"{who}: refusing to start with placeholder secrets:\n" + "\n".join(bad) + f"\n{HOW_TO_FIX}")


def url_password(url: str | None) -> str | None:
    """The password inside a connection URL (``scheme://user:password@host/...``)."""
    try:
        return urlsplit(url or "").password
    except ValueError:
        return None


def log(who: str, message: str) -> None:
    sys.stdout.write(f"[{who}] {message}\n")
    sys.stdout.flush()


# ----------------------------------------------------------------------------------------- mlflow
def write_auth_ini(path: Path, database_uri: str, admin_user: str, admin_password: str) -> None:
    """MLflow's basic-auth config, readable by this user only. ``%`` is doubled: MLflow reads the
    file with configparser's interpolation."""
    config = configparser.ConfigParser(interpolation=None)
    config["mlflow"] = {
        "default_permission": "READ",
        "database_uri": database_uri.replace("%", "%%"),
        "admin_username": admin_user.replace("%", "%%"),
        "admin_password": admin_password.replace("%", "%%"),
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
        # without a cache every request runs PBKDF2 on the password
        "auth_cache_ttl_seconds": "60",
    }
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        config.write(out)
    os.chmod(path, 0o600)


def allowed_hosts(public_url: str | None) -> str:
    """The Host headers MLflow's security middleware accepts: the service name (Airflow's
    workers), loopback (the health check) and the address a browser uses (MLFLOW_PUBLIC_URL)."""
    hosts = ["mlflow", "mlflow:5000", "localhost", "localhost:5000", "127.0.0.1", "127.0.0.1:5000"]
    if public_url:
        parts = urlsplit(public_url)
        for host in (parts.hostname, parts.netloc.rsplit("@", 1)[-1]):
            if host and host not in hosts:
                hosts.append(host)
    return ",".join(hosts)


def mlflow_server(args: list[str]) -> None:
    env = os.environ
    refuse_placeholders(
        {
            "MLFLOW_ADMIN_PASSWORD": env.get("MLFLOW_ADMIN_PASSWORD"),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": env.get("MLFLOW_FLASK_SERVER_SECRET_KEY"),
            "PG_MLFLOW_PASSWORD": url_password(env.get("MLFLOW_BACKEND_STORE_URI")),
            "S3_ACCESS_KEY_ID": env.get("AWS_ACCESS_KEY_ID"),
            "S3_SECRET_ACCESS_KEY": env.get("AWS_SECRET_ACCESS_KEY"),
        },
        "mlflow",
    )
    ini = Path(env.get("MLFLOW_AUTH_CONFIG_PATH") or AUTH_INI)
    write_auth_ini(ini, env["MLFLOW_AUTH_DATABASE_URI"], env.get("MLFLOW_ADMIN_USER") or "admin", env["MLFLOW_ADMIN_PASSWORD"])
    os.environ["MLFLOW_AUTH_CONFIG_PATH"] = str(ini)
    # the ini is the only source of the admin password: the env copy is not passed on
    os.environ.pop("MLFLOW_ADMIN_PASSWORD", None)
    os.environ.pop("MLFLOW_AUTH_DATABASE_URI", None)
    command = ["mlflow", "server", *args, "--allowed-hosts", allowed_hosts(env.get("MLFLOW_PUBLIC_URL"))]
    log("mlflow", f"auth config {ini} (0600); exec {' '.join(command)}")
    os.execvp(command[0], command)


# ---------------------------------------------------------------------------------------- airflow
def run(command: list[str], secret: str | None = None) -> subprocess.CompletedProcess:
    """Runs an Airflow CLI step; on failure stops with its output (the secret masked)."""
    done = subprocess.run(command, text=True, capture_output=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        shown = " ".join(part for part in command[:4] if not (secret and secret in part))
        output = done.stdout[-3000:] + done.stderr[-3000:]
        if secret:
            output = output.replace(secret, "***")
        raise SystemExit(f"airflow-init: `{shown} ...` failed ({done.returncode}):\n{output}")
    return done


def wait_for_postgres(url: str, timeout: float = 120) -> None:
    """Waits until Airflow's role can log in; a refused password stops at once with the cause."""
    import psycopg2

    parts = urlsplit(url.replace("+psycopg2", ""))
    started = time.monotonic()
    while True:
        try:
            psycopg2.connect(
                host=parts.hostname, port=parts.port or 5432, user=parts.username, password=parts.password, dbname=parts.path.lstrip("/")
            ).close()
            return
        except psycopg2.OperationalError as err:
            if "password authentication failed" in str(err):
                raise SystemExit(
                    f"airflow-init: Postgres refuses role {parts.username!r}: PG_AIRFLOW_PASSWORD in docker/.env differs from the "
                    "password the postgres volume was initialised with. Put the old value back, or change the role's "
                    "password (docs/compose.md, 'Rotating secrets')."
                ) from None
            if time.monotonic() - started > timeout:
                raise SystemExit(f"airflow-init: Postgres not reachable after {timeout:.0f} s: {err}") from None
            time.sleep(2)


def mlflow_request(base: str, path: str, auth: tuple[str, str], body: dict | None = None, method: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(base.rstrip("/") + path, data=json.dumps(body).encode() if body is not None else None, method=method)
    request.add_header("Authorization", "Basic " + b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def ensure_mlflow_worker(base: str, admin: tuple[str, str], worker: tuple[str, str]) -> None:
    """The workers' own MLflow user, with MANAGE on every experiment and registered model. An
    existing user gets the password of docker/.env."""
    status, body = mlflow_request(base, "/api/2.0/mlflow/users/create", admin, {"username": worker[0], "password": worker[1]})
    if status == 400 and "RESOURCE_ALREADY_EXISTS" in body:
        status, body = mlflow_request(
            base, "/api/2.0/mlflow/users/update-password", admin, {"username": worker[0], "password": worker[1]}, method="PATCH"
        )
    if status == 401:
        raise SystemExit(
            "airflow-init: MLflow refuses the admin's password: MLFLOW_ADMIN_PASSWORD in docker/.env differs from the one "
            "MLflow's auth database was created with (docs/compose.md, 'Rotating secrets')."
        )
    if status != 200:
        raise SystemExit(f"airflow-init: MLflow user {worker[0]!r}: {status} {body[:300]}")
    for kind in ("experiment", "registered_model"):
        grant = {"username": worker[0], "resource_type": kind, "resource_id": "*", "permission": "MANAGE"}
        status, body = mlflow_request(base, "/api/3.0/mlflow/users/permissions/grant", admin, grant)
        if status != 200 and "RESOURCE_ALREADY_EXISTS" not in body:
            raise SystemExit(f"airflow-init: granting {kind} MANAGE to {worker[0]!r} failed: {status} {body[:300]}")


def airflow_init() -> None:
    env = os.environ
    refuse_placeholders(
        {
            "AIRFLOW_FERNET_KEY": env.get("AIRFLOW__CORE__FERNET_KEY"),
            "AIRFLOW_API_SECRET_KEY": env.get("AIRFLOW__API__SECRET_KEY"),
            "AIRFLOW_JWT_SECRET": env.get("AIRFLOW__API_AUTH__JWT_SECRET"),
            "AIRFLOW_ADMIN_PASSWORD": env.get("AIRFLOW_ADMIN_PASSWORD"),
            "PG_AIRFLOW_PASSWORD": url_password(env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")),
            "REDIS_PASSWORD": url_password(env.get("AIRFLOW__CELERY__BROKER_URL")),
            "MLFLOW_ADMIN_PASSWORD": env.get("MLFLOW_ADMIN_PASSWORD"),
            "MLFLOW_WORKER_PASSWORD": env.get("MLFLOW_WORKER_PASSWORD"),
        },
        "airflow-init",
    )
    from cryptography.fernet import Fernet

    try:  # "new,old" while rotating (docs/compose.md): each one a Fernet key
        for key in env["AIRFLOW__CORE__FERNET_KEY"].split(","):
            Fernet(key.strip())
    except ValueError:
        raise SystemExit(f"airflow-init: AIRFLOW_FERNET_KEY is not a Fernet key (32 url-safe base64-encoded bytes); {HOW_TO_FIX}") from None

    wait_for_postgres(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    log("airflow-init", "airflow db migrate")
    run(["airflow", "db", "migrate"])  # with the FAB auth manager, FAB's tables too

    user, password = env.get("AIRFLOW_ADMIN_USER") or "admin", env["AIRFLOW_ADMIN_PASSWORD"]
    listed = run(["airflow", "users", "list", "--output", "json"]).stdout
    if re.search(rf'"username":\s*"{re.escape(user)}"', listed):
        log("airflow-init", f"Airflow user {user!r} exists: password set from docker/.env")
        run(["airflow", "users", "reset-password", "--username", user, f"--password={password}"], secret=password)
    else:
        log("airflow-init", f"creating the Airflow admin {user!r}")
        run(
            ["airflow", "users", "create", "--username", user, f"--password={password}", "--firstname", "Admin", "--lastname",
             "Driftloop", "--role", "Admin", "--email", AIRFLOW_ADMIN_EMAIL],
            secret=password,
        )  # fmt: skip

    # before any task runs: a task whose pool does not exist stays scheduled for ever, silently
    log("airflow-init", run([sys.executable, str(PLUGINS / "driftloop_airflow.py")]).stdout.strip())

    worker = (env.get("MLFLOW_WORKER_USER") or "driftloop-worker", env["MLFLOW_WORKER_PASSWORD"])
    admin = (env.get("MLFLOW_ADMIN_USER") or "admin", env["MLFLOW_ADMIN_PASSWORD"])
    ensure_mlflow_worker(env["MLFLOW_TRACKING_URI"], admin, worker)
    log("airflow-init", f"MLflow user {worker[0]!r}: MANAGE on every experiment and registered model")
    log("airflow-init", "done")


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in ("mlflow-server", "airflow-init"):
        raise SystemExit(__doc__)
    if argv[0] == "mlflow-server":
        mlflow_server(argv[2:] if argv[1:2] == ["--"] else argv[1:])
    else:
        airflow_init()


if __name__ == "__main__":
    main(sys.argv[1:])
