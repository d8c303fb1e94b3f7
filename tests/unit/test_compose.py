"""docker-compose.yaml in step with the code, the lock and the local cluster (scripts/cluster.py).

No Docker engine is needed: the file is validated against the Compose Specification's JSON schema
(docker/compose-spec.json: schema/compose-spec.json of github.com/compose-spec/compose-spec, last
changed there in commit a08f8d5, 2025-10-28), and its settings are compared with what the code
reads, what the lock pins, what docker/.env.example declares and what the cluster runs.
"""

from __future__ import annotations

import ast
import copy
import json
import os
import re
import stat
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yaml"
DOCKERFILE = ROOT / "docker" / "airflow.Dockerfile"
ENV_EXAMPLE = ROOT / "docker" / ".env.example"
CLUSTER = ROOT / "scripts" / "cluster.py"
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "docker"))

import cluster  # noqa: E402 (scripts/ and docker/ are not packages)
import compose_env  # noqa: E402
from compose_init import allowed_hosts, ensure_mlflow_worker, placeholder_problem, refuse_placeholders, write_auth_ini  # noqa: E402

# The long-running services are the local cluster's, by name; plus the one-shot jobs.
EXPECTED_SERVICES = set(cluster.SERVICES)
ONE_SHOT = {"object-store-init", "airflow-init"}
WORKERS = cluster.WORKERS
AIRFLOW_SERVICES = ("airflow-init", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", *WORKERS)

# Environment variables the code reads that compose may leave unset (each one named in the code,
# checked below, so that this list cannot go stale).
OPTIONAL_ENV = {
    # read with setdefault: the code's own default is what production wants
    "MLFLOW_CONFIGURE_LOGGING",
    # include/cli.py (driftloop backtest): set with setdefault to quiet the command's own output
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR",
    # include/curated.py: another spelling of AWS_ENDPOINT_URL, read only when that one is unset
    "AWS_ENDPOINT_URL_S3",
    # plugins/driftloop_airflow.py worker_hostname: the local cluster's hostname callable; compose
    # names the workers by their container hostnames instead
    "DRIFTLOOP_WORKER_NAME",
    # written from the config (mlflow.http_timeout, http_retries) by include/registry.py before a
    # task's first MLflow request, never read from the deployment
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    # include/cli.py (driftloop bootstrap): the command is a client of Airflow's REST API, run by a
    # user, never inside a task
    "AIRFLOW_URL",
    "AIRFLOW_USER",
    "AIRFLOW_PASSWORD",
}
# read only inside tasks (plugins/driftloop_airflow.py settings()): the workers need them, the
# dag-processor (DAG parsing and the failure callbacks of lost tasks) does not
TASK_ONLY_ENV = {"MLFLOW_TRACKING_PASSWORD", "EVIDENTLY_SECRET"}
# what every Airflow service needs whatever it runs: the config (DAG schedules at parse time),
# MLflow's address for the workers and for the links a browser follows, telemetry off
EVERY_AIRFLOW_SERVICE_ENV = {"DRIFTLOOP_CONFIG", "MLFLOW_TRACKING_URI", "MLFLOW_PUBLIC_URL", "MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK"}

INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|JWT|_KEY$|_KEY_ID$")


def load_compose(text: str | None = None) -> dict:
    return yaml.safe_load(COMPOSE.read_text() if text is None else text)


def strings(node) -> list[str]:
    """Every string value in a parsed YAML document (keys are not interpolated by compose)."""
    if isinstance(node, dict):
        return [s for value in node.values() for s in strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in strings(value)]
    return [node] if isinstance(node, str) else []


def interpolations(doc: dict) -> list[re.Match]:
    return [m for s in strings(doc) for m in INTERPOLATION.finditer(s.replace("$$", ""))]


def env_file(path: Path) -> dict[str, str]:
    return compose_env.parse_env(path.read_text())


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "environment is written as a mapping"
    return {key: str(value) for key, value in env.items()}


# ------------------------------------------------------------------------------- (1) the schema
def test_compose_file_is_valid_against_the_compose_spec_schema():
    schema = json.loads((ROOT / "docker" / "compose-spec.json").read_text())
    assert schema["title"] == "Compose Specification" and schema["$id"] == "compose_spec.json"
    validator = jsonschema.Draft7Validator(schema)
    doc = load_compose()
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]
    assert errors == []

    # the same validator refuses what compose would refuse
    broken = copy.deepcopy(doc)
    broken["services"]["postgres"]["helthcheck"] = broken["services"]["postgres"].pop("healthcheck")
    broken["services"]["redis"]["depends_on"] = {"postgres": {"condition": "service_ready"}}
    assert len(list(validator.iter_errors(broken))) >= 2


def test_interpolations_are_well_formed():
    """Every ``$`` is ``$$`` (a literal, for the container's shell) or ``${NAME...}``: a bare
    ``$VAR`` meant for the shell would be filled in (or blanked) by compose instead."""
    stray = [s for s in strings(load_compose()) if "$" in INTERPOLATION.sub("", s.replace("$$", ""))]
    assert stray == []


# ---------------------------------------------------------------- (2) the image and its versions
def lock_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line.split("#")[0].strip())
        if match:
            pins[re.sub(r"[-_.]+", "-", match[1]).lower()] = match[2]
    return pins


def test_the_image_is_the_official_slim_airflow_at_the_locked_versions():
    dockerfile = DOCKERFILE.read_text()
    froms = re.findall(r"^FROM\s+(\S+)", dockerfile, flags=re.M)
    assert len(froms) == 1, froms
    tag = re.fullmatch(r"apache/airflow:slim-(?P<airflow>\d+\.\d+\.\d+)-python(?P<python>\d+\.\d+)", froms[0])
    assert tag, f"{froms[0]} is not apache/airflow:slim-<version>-python<version>"
    assert tag["airflow"] == lock_pins()["apache-airflow"]
    assert f"apache-airflow=={tag['airflow']}" in (ROOT / "requirements.txt").read_text().split()
    # the lock is resolved for this Python (scripts/lock.py), the project requires it
    assert tag["python"] == "3.11"
    assert re.search(r'"--python-version",\s*"3\.11"', (ROOT / "scripts" / "lock.py").read_text())
    assert ">=3.11,<3.12" in (ROOT / "pyproject.toml").read_text()


def test_the_image_installs_runtime_and_deploy_sets_under_the_lock_as_the_airflow_user():
    lines = [line.split("#")[0] for line in DOCKERFILE.read_text().splitlines()]
    text = re.sub(r"\\\n\s*", " ", "\n".join(lines))  # continuation lines joined
    installs = [line for line in text.splitlines() if re.match(r"\s*RUN\s+pip install", line)]
    assert len(installs) == 1, installs
    install = installs[0]
    assert "--no-cache-dir" in install
    assert re.search(r"-r \S*requirements\.txt\b", install) and re.search(r"-r \S*requirements-deploy\.txt\b", install)
    assert re.search(r"-c \S*requirements\.lock\b", install)
    assert "requirements-test" not in text  # no test tools in the image
    users = [(i, line.split()[1]) for i, line in enumerate(text.splitlines()) if re.match(r"\s*USER\s", line)]
    before = [user for i, user in users if i < text.splitlines().index(install)]
    assert before and before[-1] == "airflow", "pip install runs as the airflow user"
    assert not any(user in ("root", "0") for _, user in users)
    assert "ENTRYPOINT" not in text, "the official entrypoint is kept"
    copies = re.findall(r"^\s*COPY\s+(.+)$", text, flags=re.M)
    sources = {part for line in copies for part in line.split()[:-1] if not part.startswith("--")}
    assert {"dags/", "plugins/", "include/"} <= sources
    # the build context's allow-list lets every COPY source through
    ignore = (ROOT / "docker" / "airflow.Dockerfile.dockerignore").read_text().splitlines()
    allowed = [line.strip() for line in ignore if line.strip() and not line.startswith("#")]
    assert allowed[0] == "*" and {f"!{source}" for source in sources} <= set(allowed)
    for source in sources:
        assert (ROOT / source).exists(), source


def test_every_image_is_pinned_and_minio_by_release():
    services = load_compose()["services"]
    images = {name: s["image"] for name, s in services.items() if "image" in s}
    for name, image in images.items():
        tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
        assert tag and tag != "latest", f"{name}: {image} is not pinned"
    release = r":RELEASE\.\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z$"
    assert re.search(r"minio/minio" + release, images["object-store"])
    assert re.search(r"minio/mc" + release, images["object-store-init"])
    built = {name for name, s in services.items() if "build" in s}
    assert {"mlflow", *AIRFLOW_SERVICES} <= built
    assert {s["build"]["dockerfile"] for name, s in services.items() if name in built} == {"docker/airflow.Dockerfile"}


# ------------------------------------------------------ (3) what the code reads, the services set
def env_reads(sources: dict[str, str]) -> dict[str, set[str]]:
    """Environment variables read with a literal name (or a module-level string constant) by
    ``os.environ[...]``, ``os.environ.get(...)``, ``os.environ.setdefault(...)`` or
    ``os.getenv(...)``, with the files that read them. Assignments to ``os.environ[...]`` are
    writes, not reads."""

    def is_environ(node) -> bool:
        return (
            isinstance(node, ast.Attribute) and node.attr == "environ" and isinstance(node.value, ast.Name) and node.value.id == "os"
        ) or (isinstance(node, ast.Name) and node.id == "environ")

    found: dict[str, set[str]] = {}
    for name, source in sources.items():
        tree = ast.parse(source)
        constants = {
            target.id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        for node in ast.walk(tree):
            key = None
            if isinstance(node, ast.Call) and node.args:
                func = node.func
                if isinstance(func, ast.Attribute) and func.attr in ("get", "setdefault") and is_environ(func.value):
                    key = node.args[0]
                elif (
                    isinstance(func, ast.Attribute) and func.attr == "getenv" and isinstance(func.value, ast.Name) and func.value.id == "os"
                ) or (isinstance(func, ast.Name) and func.id == "getenv"):
                    key = node.args[0]
            elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and is_environ(node.value):
                key = node.slice
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                found.setdefault(key.value, set()).add(name)
            elif isinstance(key, ast.Name) and key.id in constants:
                found.setdefault(constants[key.id], set()).add(name)
    return found


def code_sources() -> dict[str, str]:
    files = sorted(p for folder in ("include", "dags", "plugins") for p in (ROOT / folder).rglob("*.py"))
    return {str(p.relative_to(ROOT)): p.read_text() for p in files}


def test_the_env_scan_finds_reads_and_not_writes():
    found = env_reads(
        {
            "a.py": "import os\nNAME = 'BY_CONSTANT'\nos.environ.get(NAME)\nos.environ['BY_INDEX']\nos.getenv('BY_GETENV', 'x')\n"
            "os.environ['WRITTEN'] = '1'\nos.environ.setdefault('DEFAULTED', '1')\nfrom os import environ\nenviron.get('BARE')\n"
        }
    )
    assert set(found) == {"BY_CONSTANT", "BY_INDEX", "BY_GETENV", "DEFAULTED", "BARE"}


def test_every_environment_variable_the_code_reads_is_set_for_the_airflow_services():
    sources = code_sources()
    reads = env_reads(sources)
    assert "DRIFTLOOP_CONFIG" in reads and "MLFLOW_TRACKING_URI" in reads, "the scan finds the config and MLflow reads"
    everything = "\n".join(sources.values())
    assert [name for name in OPTIONAL_ENV if name not in everything] == [], "OPTIONAL_ENV names a variable no code mentions"
    required = set(reads) - OPTIONAL_ENV
    services = load_compose()["services"]
    for worker in WORKERS:
        missing = required - set(environment(services[worker]))
        assert missing == set(), f"{worker} lacks {sorted(missing)} (read by {sorted({f for n in missing for f in reads[n]})})"
    missing = required - TASK_ONLY_ENV - set(environment(services["airflow-dag-processor"]))
    assert missing == set(), f"airflow-dag-processor lacks {sorted(missing)}"
    for name in AIRFLOW_SERVICES:
        env = environment(services[name])
        assert EVERY_AIRFLOW_SERVICE_ENV <= set(env), f"{name} lacks {sorted(EVERY_AIRFLOW_SERVICE_ENV - set(env))}"
        mounts = [v for v in services[name].get("volumes", []) if isinstance(v, dict) and v.get("target") == env["DRIFTLOOP_CONFIG"]]
        assert mounts and mounts[0]["read_only"] is True and mounts[0]["bind"]["create_host_path"] is False, name
        assert "${DRIFTLOOP_CONFIG_FILE" in mounts[0]["source"]


def test_the_airflow_services_share_executor_auth_and_keys():
    services = load_compose()["services"]
    for name in AIRFLOW_SERVICES:
        env = environment(services[name])
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CORE__AUTH_MANAGER"] == "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager", name
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-api-server:8080/execution/", name
        for key, var in (
            ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW_FERNET_KEY"),
            ("AIRFLOW__API__SECRET_KEY", "AIRFLOW_API_SECRET_KEY"),
            ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW_JWT_SECRET"),
        ):
            assert env[key].startswith(f"${{{var}:?"), f"{name} {key}"
        assert (
            env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://:${REDIS_PASSWORD:?")
            and "@redis:6379/" in env["AIRFLOW__CELERY__BROKER_URL"]
        )
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:${PG_AIRFLOW_PASSWORD:?")
        assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"


def test_workers_run_tasks_with_their_own_mlflow_user_the_object_store_and_a_warm_shutdown():
    services = load_compose()["services"]
    for name in WORKERS:
        worker, env = services[name], environment(services[name])
        assert worker["command"] == "celery worker" and worker["hostname"] == name
        assert env["MLFLOW_TRACKING_USERNAME"].startswith("${MLFLOW_WORKER_USER") and "admin" not in env["MLFLOW_TRACKING_USERNAME"]
        assert env["MLFLOW_TRACKING_PASSWORD"].startswith("${MLFLOW_WORKER_PASSWORD:?")
        assert {env[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")} == {"1"}
        assert "AIRFLOW__CELERY__WORKER_CONCURRENCY" in env
        assert env["AWS_ENDPOINT_URL"] == "http://object-store:9000" and env["AWS_ALLOW_HTTP"] == "true"
        assert env["AWS_ACCESS_KEY_ID"].startswith("${S3_ACCESS_KEY_ID:?") and env["AWS_SECRET_ACCESS_KEY"].startswith(
            "${S3_SECRET_ACCESS_KEY:?"
        )
        assert "AWS_REGION" in env
        assert env["DUMB_INIT_SETSID"] == "0", "SIGTERM to the Celery main process only (warm shutdown)"
        grace = re.fullmatch(r"(\d+)(m|h)", worker["stop_grace_period"])
        assert grace and int(grace[1]) * (60 if grace[2] == "h" else 1) >= 10, "long enough for running tasks to finish"
        assert any(str(v).endswith(":/opt/driftloop/landing:ro") for v in worker["volumes"]), "landing is read-only"


def test_mlflow_serves_basic_auth_and_proxies_artifacts_to_the_object_store():
    mlflow = load_compose()["services"]["mlflow"]
    command, env = mlflow["command"], environment(mlflow)
    assert command[:3] == ["python", "/opt/driftloop/docker/compose_init.py", "mlflow-server"]
    assert command[command.index("--app-name") + 1] == "basic-auth" and "--serve-artifacts" in command
    assert re.fullmatch(r"s3://\$\{S3_BUCKET[^}]*\}/mlflow", command[command.index("--artifacts-destination") + 1])
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://object-store:9000"
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"].startswith("${MLFLOW_FLASK_SERVER_SECRET_KEY:?")
    assert env["MLFLOW_AUTH_DATABASE_URI"].endswith("@postgres:5432/mlflow_auth")
    assert env["MLFLOW_BACKEND_STORE_URI"].endswith("@postgres:5432/mlflow")
    assert env["CONNECTION_CHECK_MAX_COUNT"] == "0", "the official entrypoint would wait for Airflow's database"


def test_remote_logging_waits_for_the_amazon_provider():
    """Remote task logs need apache-airflow-providers-amazon: the settings stay commented out in
    docker-compose.yaml until the deploy set has it, and are active once it does."""
    deploy = (ROOT / "requirements-deploy.txt").read_text()
    has_provider = re.search(r"^apache-airflow-providers-amazon==", deploy, flags=re.M) is not None
    active = {
        k for name in AIRFLOW_SERVICES for k in environment(load_compose()["services"][name]) if k.startswith("AIRFLOW__LOGGING__REMOTE")
    }
    text = COMPOSE.read_text()
    assert (
        re.search(r"^\s*#\s*AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER: s3://\$\{S3_BUCKET[^}]*\}/airflow-logs", text, flags=re.M) or active
    )
    assert bool(active) == has_provider, "remote logging is active exactly when the amazon provider is in requirements-deploy.txt"


# -------------------------------------------------------------------------- (4) docker/.env.example
def test_every_compose_variable_is_declared_in_env_example_and_secrets_are_empty_there():
    example = env_file(ENV_EXAMPLE)
    used = {m["name"] for m in interpolations(load_compose())}
    assert used - set(example) == set(), "used by docker-compose.yaml, missing from docker/.env.example"
    assert set(example) - used == set(), "declared in docker/.env.example, used nowhere"
    secret_names = {name for name in example if SECRET_NAME.search(name)}
    assert secret_names == set(compose_env.SECRETS), "every secret-looking variable is a generated secret"
    assert {name: example[name] for name in compose_env.SECRETS if example[name]} == {}, "secrets ship empty"
    assert [name for name, value in example.items() if not value and name not in compose_env.SECRETS] == []


# ---------------------------------------------------------------------------- (5) the service set
def one_shots(services: dict) -> set[str]:
    return {
        dep
        for service in services.values()
        for dep, how in (service.get("depends_on") or {}).items()
        if how.get("condition") == "service_completed_successfully"
    }


def test_long_running_services_are_the_clusters():
    services = load_compose()["services"]
    jobs = one_shots(services)
    assert jobs == ONE_SHOT
    assert set(services) - jobs == EXPECTED_SERVICES
    assert len(cluster.SERVICES) == len(EXPECTED_SERVICES)  # no name twice


def test_health_checks_restarts_and_start_order():
    services = load_compose()["services"]
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service["restart"] == "no" and "healthcheck" not in service, name
        else:
            assert service["restart"] in ("unless-stopped", "always"), name
            assert service["healthcheck"]["test"], f"{name} has no health check"
        for dep, how in (service.get("depends_on") or {}).items():
            expected = "service_completed_successfully" if dep in ONE_SHOT else "service_healthy"
            assert how["condition"] == expected, f"{name} -> {dep}"
    order = {name: set(s.get("depends_on") or {}) for name, s in services.items()}
    assert {"postgres", "object-store-init"} <= order["mlflow"] and "object-store" in order["object-store-init"]
    assert {"postgres", "redis", "mlflow"} <= order["airflow-init"]
    for name in AIRFLOW_SERVICES[1:]:
        assert {"airflow-init", "postgres", "redis"} <= order[name], name
    for name in WORKERS:
        assert {"airflow-api-server", "mlflow", "object-store"} <= order[name], name


def function_keys(tree: ast.Module, function: str) -> set[str]:
    """String keys of dict literals and keyword names of calls inside ``function`` (a method of
    scripts/cluster.py)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == function:
            keys = {k.value for d in ast.walk(node) if isinstance(d, ast.Dict) for k in d.keys if isinstance(k, ast.Constant)}
            return keys | {kw.arg for c in ast.walk(node) if isinstance(c, ast.Call) for kw in c.keywords if kw.arg}
    raise AssertionError(f"scripts/cluster.py has no {function}()")


# What the cluster sets that compose does not need: loopback specifics of the cluster.
CLUSTER_ONLY_ENV = {
    "AIRFLOW_HOME",  # the image's /opt/airflow
    "AIRFLOW__API__HOST",  # the cluster binds 127.0.0.1; a container listens on its own interface
    "AIRFLOW__API__PORT",  # 8080 inside the container, published as AIRFLOW_PORT
    "AIRFLOW__LOGGING__BASE_LOG_FOLDER",  # the image's /opt/airflow/logs, on the airflow-logs volume
    "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME",  # a tighter scheduler loop for the cluster's tests
}


def test_airflow_and_client_settings_are_in_step_with_the_cluster():
    tree = ast.parse(CLUSTER.read_text())
    services = load_compose()["services"]
    airflow = function_keys(tree, "airflow_env") - CLUSTER_ONLY_ENV
    for name in AIRFLOW_SERVICES:
        missing = {k for k in airflow if k.startswith("AIRFLOW__")} - set(environment(services[name]))
        assert missing == set(), f"{name} lacks what the cluster sets: {sorted(missing)}"
    client = function_keys(tree, "client_env") | function_keys(tree, "s3_env")
    for name in WORKERS:
        missing = client - set(environment(services[name]))
        assert missing == set(), f"{name} lacks what the cluster gives its workers: {sorted(missing)}"


# -------------------------------------------------------------------- (6) scripts/compose_env.py
def run_compose_env(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "compose_env.py"), *args], capture_output=True, text=True, cwd=ROOT)


def test_compose_env_writes_a_private_file_of_fresh_secrets_and_never_replaces_one_unasked(tmp_path):
    out = tmp_path / "docker" / ".env"
    done = run_compose_env("--out", str(out))
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert str(out) in done.stdout and "http://localhost:8080" in done.stdout and "user admin" in done.stdout
    example, written = env_file(ENV_EXAMPLE), env_file(out)
    assert list(written) == list(example), "every variable of docker/.env.example, in its order"
    assert {k: v for k, v in written.items() if k not in compose_env.SECRETS} == {
        k: v for k, v in example.items() if k not in compose_env.SECRETS
    }
    assert {name: placeholder_problem(written[name]) for name in compose_env.SECRETS} == dict.fromkeys(compose_env.SECRETS)
    assert len({written[name] for name in compose_env.SECRETS}) == len(compose_env.SECRETS), "no secret reused"
    for value in written.values():
        assert value not in done.stdout or value in example.values(), "secrets are not printed"
    from cryptography.fernet import Fernet

    Fernet(written["AIRFLOW_FERNET_KEY"])  # a real Fernet key
    for name in ("PG_AIRFLOW_PASSWORD", "PG_MLFLOW_PASSWORD", "REDIS_PASSWORD"):  # they go into URLs unquoted
        assert re.fullmatch(r"[0-9a-f]{32,}", written[name]), name

    before = out.read_text()
    refused = run_compose_env("--out", str(out))
    assert refused.returncode != 0 and "--force" in refused.stderr and out.read_text() == before
    forced = run_compose_env("--out", str(out), "--force")
    assert forced.returncode == 0, forced.stderr
    again = env_file(out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert all(again[name] != written[name] for name in compose_env.SECRETS), "--force makes new secrets"
    assert [p.name for p in out.parent.iterdir()] == [".env"], "no temporary file left behind"


def test_compose_env_refuses_an_example_out_of_step_with_its_generators():
    text = ENV_EXAMPLE.read_text()
    with pytest.raises(SystemExit, match="NEW_PASSWORD"):
        compose_env.render(text + "NEW_PASSWORD=\n")
    with pytest.raises(SystemExit, match="REDIS_PASSWORD"):
        compose_env.render(text.replace("REDIS_PASSWORD=\n", ""))


@pytest.mark.parametrize(
    "value", ["", "   ", "changeme", "CHANGEME", "admin", "password", "secret", "change-me-postgres-password", "short-random-1", "a" * 40]
)
def test_the_placeholder_check_refuses_placeholders(value):
    assert placeholder_problem(value) is not None


def test_the_placeholder_check_names_each_bad_secret():
    assert placeholder_problem("3f9c1a7be25d40e8a6b1c9d07f2e5a13") is None
    with pytest.raises(SystemExit) as refused:
        refuse_placeholders(
            {"REDIS_PASSWORD": "changeme", "AIRFLOW_JWT_SECRET": "3f9c1a7be25d40e8a6b1c9d07f2e5a13", "PG_MLFLOW_PASSWORD": ""}, "test"
        )
    message = str(refused.value)
    assert "REDIS_PASSWORD is a placeholder" in message and "PG_MLFLOW_PASSWORD is empty" in message
    assert "AIRFLOW_JWT_SECRET" not in message and "make env" in message


def test_mlflow_auth_ini_is_private_and_read_back_as_mlflow_reads_it(tmp_path):
    import configparser

    ini = tmp_path / "auth" / "basic_auth.ini"
    write_auth_ini(ini, "postgresql+psycopg2://mlflow:p%40ss@postgres:5432/mlflow_auth", "admin", "pa%ss-word-0123456789")
    assert stat.S_IMODE(ini.stat().st_mode) == 0o600
    config = configparser.ConfigParser()  # MLflow's reader, with its % interpolation
    config.read(ini)
    assert config["mlflow"]["admin_password"] == "pa%ss-word-0123456789"
    assert config["mlflow"]["database_uri"].endswith("@postgres:5432/mlflow_auth") and "%40" in config["mlflow"]["database_uri"]
    hosts = allowed_hosts("https://mlflow.example.org:8443/").split(",")
    assert {"mlflow:5000", "localhost:5000", "mlflow.example.org", "mlflow.example.org:8443"} <= set(hosts)


class FakeMlflowAuth(BaseHTTPRequestHandler):
    """MLflow's user REST API as 3.17 answers it: 400 RESOURCE_ALREADY_EXISTS for a second
    create or grant; 401 for a wrong admin password."""

    users: dict[str, str] = {}
    grants: set[tuple[str, str]] = set()
    calls: list[tuple[str, str]] = []

    def log_message(self, *args):  # quiet
        pass

    def reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self.calls.append((self.command, self.path))
        if self.headers.get("Authorization") != "Basic YWRtaW46YWRtaW4tcGFzc3dvcmQtMDEyMzQ1Njc4OQ==":  # admin:admin-password-0123456789
            return self.reply(401, {"error_code": "UNAUTHENTICATED"})
        if (self.command, self.path) == ("POST", "/api/2.0/mlflow/users/create"):
            if body["username"] in self.users:
                return self.reply(400, {"error_code": "RESOURCE_ALREADY_EXISTS"})
            self.users[body["username"]] = body["password"]
            return self.reply(200, {"user": {"username": body["username"]}})
        if (self.command, self.path) == ("PATCH", "/api/2.0/mlflow/users/update-password"):
            self.users[body["username"]] = body["password"]
            return self.reply(200, {})
        if (self.command, self.path) == ("POST", "/api/3.0/mlflow/users/permissions/grant"):
            assert body["resource_id"] == "*" and body["permission"] == "MANAGE"
            key = (body["username"], body["resource_type"])
            if key in self.grants:
                return self.reply(400, {"error_code": "RESOURCE_ALREADY_EXISTS"})
            self.grants.add(key)
            return self.reply(200, {})
        self.reply(404, {})

    do_POST = do_PATCH = handle_any


def test_airflow_init_makes_the_workers_mlflow_user_and_applies_a_new_password_on_rerun():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeMlflowAuth)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base, admin = f"http://127.0.0.1:{server.server_port}", ("admin", "admin-password-0123456789")
    try:
        ensure_mlflow_worker(base, admin, ("driftloop-worker", "first-password-0123456789"))
        ensure_mlflow_worker(base, admin, ("driftloop-worker", "second-password-0123456789"))  # a rerun with a new .env
        assert FakeMlflowAuth.users == {"driftloop-worker": "second-password-0123456789"}
        assert FakeMlflowAuth.grants == {("driftloop-worker", "experiment"), ("driftloop-worker", "registered_model")}
        assert ("PATCH", "/api/2.0/mlflow/users/update-password") in FakeMlflowAuth.calls
        with pytest.raises(SystemExit, match="MLFLOW_ADMIN_PASSWORD"):
            ensure_mlflow_worker(base, ("admin", "not-the-admin-password"), ("driftloop-worker", "x" * 20))
    finally:
        server.shutdown()


def fake_tool(folder: Path, name: str) -> Path:
    """A stand-in for ``name`` on PATH that records its arguments and standard input."""
    log = folder / f"{name}.log"
    tool = folder / name
    tool.write_text(f'#!/bin/sh\necho "ARGS $*" >> {log}\n[ -t 0 ] || cat >> {log}\nexit 0\n')
    tool.chmod(0o755)
    return log


def test_postgres_init_quotes_passwords_through_psql_variables_and_refuses_placeholders(tmp_path):
    log = fake_tool(tmp_path, "psql")
    env = {"PATH": f"{tmp_path}:{os.environ['PATH']}", "POSTGRES_USER": "postgres", "POSTGRES_PASSWORD": "0" * 8 + "1f2e3d4c5b6a7980"}
    good = {**env, "PG_AIRFLOW_PASSWORD": "a1b2c3d4e5f60718293a4b5c6d7e8f90", "PG_MLFLOW_PASSWORD": "f0e1d2c3b4a5968778695a4b3c2d1e0f"}
    done = subprocess.run(
        ["bash", str(ROOT / "docker" / "postgres-init.sh")], env=good, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 0, done.stderr
    sql = log.read_text()
    assert "airflow_pw=a1b2c3d4e5f60718293a4b5c6d7e8f90" in sql and "PASSWORD :'airflow_pw'" in sql
    assert sql.count("a1b2c3d4e5f60718293a4b5c6d7e8f90") == 1, "the password is never spliced into the SQL text"
    assert all(f"CREATE DATABASE {db} OWNER" in sql for db in ("airflow", "mlflow", "mlflow_auth"))
    log.unlink()
    bad = {**good, "PG_MLFLOW_PASSWORD": "changeme"}
    done = subprocess.run(
        ["bash", str(ROOT / "docker" / "postgres-init.sh")], env=bad, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    assert done.returncode != 0 and "PG_MLFLOW_PASSWORD" in done.stderr and not log.exists()


def test_object_store_init_makes_a_private_bucket_and_a_key_limited_to_it(tmp_path):
    log = fake_tool(tmp_path, "mc")
    env = {
        "PATH": f"{tmp_path}:{os.environ['PATH']}",
        "MINIO_ROOT_USER": "driftloop-root",
        "MINIO_ROOT_PASSWORD": "5d41402abc4b2a76b9719d911017c592",
        "S3_BUCKET": "driftloop",
        "S3_ACCESS_KEY_ID": "AKIA0123456789ABCDEF",
        "S3_SECRET_ACCESS_KEY": "7d793037a0760186574b0282f2f435e7aa1bd3c1",
    }
    done = subprocess.run(["sh", str(ROOT / "docker" / "object-store-init.sh")], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    calls = log.read_text()
    for expected in (
        "ARGS mb --ignore-existing local/driftloop",
        "ARGS anonymous set none local/driftloop",
        "ARGS admin user add local AKIA0123456789ABCDEF",
    ):
        assert expected in calls
    assert "ARGS admin policy attach local driftloop-bucket --user AKIA0123456789ABCDEF" in calls
    policy = re.search(r"ARGS admin policy create local driftloop-bucket (\S+)", calls)
    assert policy and '"arn:aws:s3:::driftloop/*"' in Path(policy[1]).read_text()
    log.unlink()
    done = subprocess.run(
        ["sh", str(ROOT / "docker" / "object-store-init.sh")],
        env={**env, "MINIO_ROOT_PASSWORD": "minioadmin"},
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "MINIO_ROOT_PASSWORD" in done.stderr and not log.exists()


# ------------------------------------------------------------------- (7) no literal secret in it
SECRET_ASSIGNMENT = re.compile(
    r"(?i)(password|passwd|secret|token|requirepass|fernet)[\w.-]*[\"']?\s*(?:[:=]|\s)\s*[\"']?(?P<value>[^\s\"'#,\]]+)"
)
URL_CREDENTIALS = re.compile(r"://[^/\s:@]*:(?P<password>[^@\s]+)@")


def literal_secrets(text: str) -> list[str]:
    """Secrets written into the compose text rather than taken from docker/.env."""
    problems = []
    doc = yaml.safe_load(text)
    for match in interpolations(doc):  # a secret has no default: compose stops when it is unset
        if match["name"] in compose_env.SECRETS and match["op"] != ":?":
            problems.append(f"${{{match['name']}{match['op'] or ''}...}}: a secret must be ${{NAME:?...}}")
    for where, service in {
        **doc["services"],
        **{k: {"environment": v} for k, v in doc.items() if k.startswith("x-") and isinstance(v, dict)},
    }.items():
        env = service.get("environment") if isinstance(service, dict) else None
        for key, value in (env or {}).items() if isinstance(env, dict) else ():
            if SECRET_NAME.search(key):
                match = INTERPOLATION.fullmatch(str(value))
                if not (match and match["name"] in compose_env.SECRETS):
                    problems.append(f"{where}: {key} is not one ${{SECRET:?...}} of docker/.env")
    for value in strings(doc):
        for match in URL_CREDENTIALS.finditer(value):
            inner = INTERPOLATION.fullmatch(match["password"])
            if not (inner and inner["name"] in compose_env.SECRETS):
                problems.append(f"credentials in a URL: {value}")
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("#"):
            continue
        for match in SECRET_ASSIGNMENT.finditer(INTERPOLATION.sub("$VAR", line)):
            if not match["value"].startswith("$"):
                problems.append(f"line {number}: {line.strip()}")
    return problems


def test_no_literal_secret_in_the_compose_file():
    text = COMPOSE.read_text()
    assert literal_secrets(text) == []
    # each kind of slip is caught
    for slip in (
        text.replace("${REDIS_PASSWORD:?set it in docker/.env (make env)}@redis", "hunter2hunter2hunter2@redis", 1),
        text.replace("${AIRFLOW_JWT_SECRET:?set it in docker/.env (make env)}", "${AIRFLOW_JWT_SECRET:-dev-jwt-secret-0123456789}", 1),
        text.replace("${MLFLOW_FLASK_SERVER_SECRET_KEY:?set it in docker/.env (make env)}", "0123456789abcdef0123456789abcdef", 1),
        text.replace(
            '\n  MLFLOW_DISABLE_TELEMETRY: "true"\n', '\n  MLFLOW_DISABLE_TELEMETRY: "true"\n  EXTRA_PASSWORD: hunter2hunter2\n', 1
        ),
    ):
        assert slip != text and literal_secrets(slip) != []
