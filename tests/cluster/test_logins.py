"""Logins everywhere on the cluster: the Airflow UI and API (FAB), MLflow (basic auth) and the object
store (its own keys) refuse anonymous and wrong-password requests and let the right ones in. Every
service listens on loopback only, and the credentials file is private."""

from __future__ import annotations

import json
import stat
import urllib.error
import urllib.request
from base64 import b64encode

import pytest

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]


def _status(url: str, *, basic: tuple[str, str] | None = None, bearer: str | None = None, body: dict | None = None) -> int:
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    if basic:
        req.add_header("Authorization", "Basic " + b64encode(f"{basic[0]}:{basic[1]}".encode()).decode())
    if bearer:
        req.add_header("Authorization", f"Bearer {bearer}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def test_the_credentials_file_is_private_and_complete(cluster):
    path = cluster.home / "credentials.env"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((cluster.home / "secrets.env").stat().st_mode) == 0o600
    names = {
        "AIRFLOW_URL",
        "AIRFLOW_USER",
        "AIRFLOW_PASSWORD",
        "MLFLOW_URL",
        "MLFLOW_USER",
        "MLFLOW_PASSWORD",
        "EVIDENTLY_URL",
        "S3_ENDPOINT_URL",
    }
    assert names <= set(cluster.creds)
    assert all(len(cluster.creds[k]) >= 16 for k in ("AIRFLOW_PASSWORD", "MLFLOW_PASSWORD"))


def test_airflow_refuses_anonymous_and_wrong_passwords(cluster):
    url, user, password = (cluster.creds[k] for k in ("AIRFLOW_URL", "AIRFLOW_USER", "AIRFLOW_PASSWORD"))
    assert _status(f"{url}/api/v2/dags") == 401
    assert _status(f"{url}/api/v2/dags", bearer="not-a-token") in (401, 403)
    assert _status(f"{url}/api/v2/dags", basic=(user, password)) == 401  # the REST API takes tokens only
    # the UI's page is a shell for anyone; its data endpoints are what must refuse
    assert _status(f"{url}/ui/config") == 401
    assert _status(f"{url}/ui/dags") == 401
    assert _status(f"{url}/auth/token", body={"username": user, "password": password + "x"}) == 401
    assert _status(f"{url}/auth/token", body={"username": "nobody", "password": password}) == 401
    assert _status(f"{url}/execution/task-instances/00000000-0000-0000-0000-000000000000/heartbeat") in (401, 403, 405)


def test_airflow_lets_the_admin_in(cluster, airflow):
    assert {"ingest", "monitor", "drift_watch", "retrain", "rollback"} <= set(airflow.dag_ids())
    me = airflow._request("GET", "/ui/auth/me")
    assert me["username"] == cluster.creds["AIRFLOW_USER"]


def test_mlflow_refuses_anonymous_and_wrong_passwords(cluster):
    url, user, password = (cluster.creds[k] for k in ("MLFLOW_URL", "MLFLOW_USER", "MLFLOW_PASSWORD"))
    search = f"{url}/api/2.0/mlflow/experiments/search?max_results=5"
    assert _status(search) == 401
    assert _status(search, basic=(user, password + "x")) == 401
    assert _status(f"{url}/", basic=("nobody", password)) == 401
    assert _status(search, basic=(user, password)) == 200
    # the artifacts proxy too
    assert _status(f"{url}/api/2.0/mlflow-artifacts/artifacts?path=") == 401


def test_the_workers_mlflow_user_is_not_an_admin(cluster):
    """Workers log in as their own user, which can work with experiments and models but cannot
    manage users."""
    from mlflow import MlflowClient

    url = cluster.creds["MLFLOW_URL"]
    worker = (cluster.client_env()["MLFLOW_TRACKING_USERNAME"], cluster.client_env()["MLFLOW_TRACKING_PASSWORD"])
    assert worker[0] != cluster.creds["MLFLOW_USER"]
    assert _status(f"{url}/api/2.0/mlflow/users/create", basic=worker, body={"username": "eve", "password": "x" * 20}) == 403
    MlflowClient().search_experiments()  # this process works as the workers do


def test_the_object_store_refuses_anonymous_and_wrong_keys(cluster):
    import s3fs

    env = cluster.s3_env()
    endpoint = env["AWS_ENDPOINT_URL"]
    assert _status(f"{endpoint}/driftloop") == 403
    assert _status(f"{endpoint}/moto-api/reset") == 403  # the store's control plane is closed
    wrong = s3fs.S3FileSystem(
        key=env["AWS_ACCESS_KEY_ID"], secret="0" * 40, client_kwargs={"endpoint_url": endpoint}, skip_instance_cache=True
    )
    with pytest.raises(PermissionError):
        wrong.ls("driftloop")
    right = s3fs.S3FileSystem(
        key=env["AWS_ACCESS_KEY_ID"],
        secret=env["AWS_SECRET_ACCESS_KEY"],
        client_kwargs={"endpoint_url": endpoint},
        skip_instance_cache=True,
    )
    right.ls("driftloop")


def test_the_dashboard_refuses_writes_without_its_secret(cluster):
    """Evidently's UI has no login (its pages are open on loopback), but its write API takes only
    the generated secret the workers carry."""
    url = cluster.creds["EVIDENTLY_URL"]
    body = json.dumps({"name": "intruder", "description": "x"}).encode()

    def create(secret: str | None) -> int:
        request = urllib.request.Request(f"{url}/api/v2/projects", data=body, method="POST", headers={"Content-Type": "application/json"})
        if secret is not None:
            request.add_header("evidently-secret", secret)
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return resp.status
        except urllib.error.HTTPError as err:
            return err.code

    assert create(None) == 403 and create("wrong-secret") == 403
    assert _status(f"{url}/api/projects/") == 200


def test_every_service_listens_on_loopback_only(cluster):
    """No socket of any process of the cluster listens on another interface (the log servers of
    Airflow 3.3 would bind every interface: the cluster starts workers and triggerer without them)."""
    from cluster import PROCESSES  # every service started as a process (all but Postgres and Redis)

    pids = set()
    for name in PROCESSES:
        pids |= _tree(cluster, name)
    inodes = _socket_inodes(pids)
    listening = _listening()
    ours = {addr for inode, addr in listening.items() if inode in inodes}
    assert ours, "no listening socket found for the cluster's processes"
    assert all(addr.startswith("127.0.0.1:") for addr in ours), ours


def _tree(cluster, name: str) -> set[int]:
    from cluster import descendants

    pid = cluster.pid(name)
    return descendants(pid) if pid else set()


def _socket_inodes(pids: set[int]) -> set[str]:
    from pathlib import Path

    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = fd.readlink().as_posix() if fd.is_symlink() else ""
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    return inodes


def _listening() -> dict[str, str]:
    """Listening TCP sockets (IPv4 and IPv6): inode -> address."""
    import ipaddress
    from pathlib import Path

    found = {}
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            if parts[3] != "0A":  # LISTEN
                continue
            host_hex, port_hex = parts[1].split(":")
            raw = bytes.fromhex(host_hex)
            if v6:
                host = str(ipaddress.IPv6Address(b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))))
            else:
                host = str(ipaddress.IPv4Address(raw[::-1]))
            found[parts[9]] = f"{host}:{int(port_hex, 16)}"
    return found
