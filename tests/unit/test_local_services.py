"""Local services only on loopback, with a private password file (scripts/services.py). The e2e
test starts them for real; checked by hand with `ss -ltnp` too (api-server and MLflow on
127.0.0.1)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import services  # noqa: E402


def test_password_file_is_private_from_its_creation(tmp_path):
    path = tmp_path / "simple_auth_manager_passwords.json.generated"
    old = os.umask(0)  # a permissive umask: the mode must come from the creation itself
    try:
        assert services.write_private(path, '{"admin": "x"}') is True
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o600
    assert services.write_private(path, '{"admin": "y"}') is False  # an existing file is kept
    assert path.read_text() == '{"admin": "x"}'


def test_every_server_binds_loopback(tmp_path):
    svc = services.Services(tmp_path, 18080, 15500, tmp_path / "c.yaml")
    assert svc.env()["AIRFLOW__API__HOST"] == "127.0.0.1"
    cmd = services.mlflow_command(tmp_path, 15500)
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"
    # Evidently's UI has no login: loopback only, and writing needs the generated secret, which
    # it reads from its environment (never on the command line)
    cmd = services.evidently_command(tmp_path, 18800)
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"
    secret = svc.env()["EVIDENTLY_SECRET"]
    assert len(secret) >= 16 and secret not in " ".join(cmd) and svc.env()["EVIDENTLY_SECRET"] == secret
    assert (tmp_path / "evidently" / "secret").stat().st_mode & 0o777 == 0o600
