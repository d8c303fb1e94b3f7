"""Writes docker/.env for docker-compose.yaml: docker/.env.example with every secret generated.

    .venv/bin/python scripts/compose_env.py                 (or: make env)
    .venv/bin/python scripts/compose_env.py --out PATH      another file
    .venv/bin/python scripts/compose_env.py --force         replace an existing file (new secrets)

The file is created readable by its owner only (0600) and an existing one is never replaced
without ``--force``: its secrets are the ones the volumes (Postgres roles, MLflow's admin) were
initialised with. Every generated value passes the check the containers apply
(docker/compose_init.py: no empty, placeholder or short secret).
"""

from __future__ import annotations

import argparse
import secrets
import string
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docker" / ".env.example"
DEFAULT_OUT = ROOT / "docker" / ".env"
sys.path.insert(0, str(ROOT / "docker"))

from compose_init import placeholder_problem  # noqa: E402
from services import write_private  # noqa: E402

ALNUM = string.ascii_letters + string.digits


def hex_secret(nbytes: int = 16) -> Callable[[], str]:
    """Hex: safe inside connection URLs (postgresql://role:secret@..., redis://:secret@...)."""
    return lambda: secrets.token_hex(nbytes)


def password(length: int = 24) -> str:
    """Letters and digits: typed into login forms, never starts with ``-`` (a CLI flag)."""
    return "".join(secrets.choice(ALNUM) for _ in range(length))


def access_key_id() -> str:
    return "AKIA" + "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(16))


def fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


# Every secret of docker/.env.example, and how it is made (the same kinds as the local cluster's).
SECRETS: dict[str, Callable[[], str]] = {
    "PG_SUPERUSER_PASSWORD": hex_secret(),
    "PG_AIRFLOW_PASSWORD": hex_secret(),
    "PG_MLFLOW_PASSWORD": hex_secret(),
    "REDIS_PASSWORD": hex_secret(),
    "MINIO_ROOT_PASSWORD": hex_secret(),
    "S3_ACCESS_KEY_ID": access_key_id,
    "S3_SECRET_ACCESS_KEY": hex_secret(20),
    "MLFLOW_ADMIN_PASSWORD": password,
    "MLFLOW_WORKER_PASSWORD": password,
    "MLFLOW_FLASK_SERVER_SECRET_KEY": hex_secret(32),
    "AIRFLOW_ADMIN_PASSWORD": password,
    "AIRFLOW_FERNET_KEY": fernet_key,
    "AIRFLOW_API_SECRET_KEY": hex_secret(32),
    "AIRFLOW_JWT_SECRET": hex_secret(32),
    "EVIDENTLY_SECRET": hex_secret(32),
}


def parse_env(text: str) -> dict[str, str]:
    """``NAME=value`` lines of an env file (comments and blank lines skipped)."""
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and not line.lstrip().startswith("#"))
    return {name.strip(): value.strip() for name, value in pairs}


def render(example: str) -> tuple[str, dict[str, str]]:
    """The example with each secret filled in; its comments and other values kept.

    Raises:
        SystemExit: the example and ``SECRETS`` disagree (a secret without a generator, or the
        reverse), or a generated value fails the placeholder check.
    """
    values = parse_env(example)
    empty = {name for name, value in values.items() if not value}
    if empty != set(SECRETS):
        raise SystemExit(
            f"{EXAMPLE.relative_to(ROOT)} and scripts/compose_env.py disagree on the secrets: "
            f"no generator for {sorted(empty - set(SECRETS))}, not in the example: {sorted(set(SECRETS) - empty)}"
        )
    made = {name: make() for name, make in SECRETS.items()}
    for name, value in made.items():
        if problem := placeholder_problem(value):
            raise SystemExit(f"generated {name} {problem}")
    lines = []
    for line in example.splitlines():
        name = line.split("=", 1)[0].strip()
        lines.append(f"{name}={made[name]}" if "=" in line and not line.lstrip().startswith("#") and name in made else line)
    return "\n".join(lines) + "\n", {**values, **made}


def write_env(path: Path, text: str, force: bool) -> None:
    """Creates ``path`` with mode 0600 from the start; replaces an existing file only with ``force``."""
    if not write_private(path, text, replace=force):
        raise SystemExit(
            f"{path} exists: not replaced (its secrets are the ones the volumes were initialised with). "
            "Use --force for new secrets, then see docs/compose.md, 'Rotating secrets'."
        )


def shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the file to write (default: docker/.env)")
    parser.add_argument("--force", action="store_true", help="replace an existing file, with new secrets")
    args = parser.parse_args(argv)

    replacing = args.out.exists()
    text, values = render(EXAMPLE.read_text())
    write_env(args.out, text, args.force)
    env_file = shown(args.out)
    print(f"wrote {env_file} (mode 0600): {len(SECRETS)} generated secrets; keep it out of version control")
    if replacing:
        print(
            "  replaced an existing file: volumes made with the old one keep the old Postgres role passwords and MLflow "
            "admin password (docs/compose.md, 'Rotating secrets'), or start afresh with `docker compose down -v`"
        )
    config = ROOT / values["DRIFTLOOP_CONFIG_FILE"]
    if not config.exists():
        print(f"  next: cp docker/driftloop.example.yaml {values['DRIFTLOOP_CONFIG_FILE']}, then describe your data in it")
    print(f"  start: docker compose --env-file {env_file} up -d --build")
    print(f"Airflow  {values['AIRFLOW_PUBLIC_URL']}  user {values['AIRFLOW_ADMIN_USER']}, password AIRFLOW_ADMIN_PASSWORD in {env_file}")
    print(f"MLflow   {values['MLFLOW_PUBLIC_URL']}  user {values['MLFLOW_ADMIN_USER']}, password MLFLOW_ADMIN_PASSWORD in {env_file}")
    print(f"Model health (Evidently's UI)  {values['EVIDENTLY_PUBLIC_URL']}  no login: keep it on 127.0.0.1 or behind a proxy")
    print(
        f"MinIO    http://localhost:{values['OBJECT_STORE_CONSOLE_PORT']}  user {values['MINIO_ROOT_USER']}, "
        f"password MINIO_ROOT_PASSWORD in {env_file}"
    )


if __name__ == "__main__":
    main()
