"""Rewrites requirements.lock: every package of the venv (``pip freeze``), then the deployment
extras of requirements-deploy.txt with their transitive packages, as pip resolves them against
the venv's pins (``pip install --dry-run --report``; nothing is installed).

    .venv/bin/python scripts/lock.py      (or: make lock)
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = {"pip", "setuptools", "wheel"}


def pip(*args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args], check=True, capture_output=True, text=True
    ).stdout


def norm(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def main() -> None:
    frozen = [line for line in pip("freeze", "--all").splitlines() if norm(line.split("==")[0]) not in SKIP]
    with tempfile.TemporaryDirectory() as tmp:
        report, pins = Path(tmp) / "report.json", Path(tmp) / "venv.txt"
        pins.write_text("\n".join(frozen) + "\n")
        # against the installed venv: what is installed stays, only what is missing is reported
        pip("install", "--dry-run", "--quiet", "--report", str(report), "-r", str(ROOT / "requirements-deploy.txt"), "-c", str(pins))
        resolved = json.loads(report.read_text())["install"]
    have = {norm(line.split("==")[0]) for line in frozen}
    extra = sorted(f"{p['metadata']['name']}=={p['metadata']['version']}" for p in resolved if norm(p["metadata"]["name"]) not in have)
    (ROOT / "requirements.lock").write_text(
        "\n".join(frozen)
        + "\n# deployment extras (requirements-deploy.txt) and what they pull in; not in the venv\n"
        + "\n".join(extra)
        + "\n"
    )
    print(f"requirements.lock: {len(frozen)} packages of the venv, {len(extra)} deployment extras")


if __name__ == "__main__":
    main()
