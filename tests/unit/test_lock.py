"""The full lock pins everything the venv and the Docker image install (see scripts/lock.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)$")


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        match = PIN.match(line)
        assert match, f"{path.name}: {line!r} is not pinned with =="
        name = norm(match[1])
        assert name not in found, f"{path.name} pins {name} twice"
        found[name] = match[2]
    return found


def test_every_direct_requirement_is_pinned_at_the_locked_version():
    lock = pins(ROOT / "requirements.lock")
    for direct in ("requirements.txt", "requirements-deploy.txt"):
        for name, version in pins(ROOT / direct).items():
            assert lock.get(name) == version, f"{direct}: {name}=={version}, lock has {lock.get(name)}"


def test_the_venv_is_the_lock():
    lock = pins(ROOT / "requirements.lock")
    for dist in metadata.distributions():
        name = norm(dist.metadata["Name"])
        if name in ("pip", "setuptools", "wheel"):
            continue
        assert lock.get(name) == dist.version, f"installed {name}=={dist.version}, lock has {lock.get(name)}"


def test_the_deployment_extras_resolve_inside_the_lock(tmp_path):
    # pip resolves the image's extras against this venv and the lock (the package registry is
    # reachable on this machine); nothing is installed
    report = tmp_path / "report.json"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--disable-pip-version-check", "--report", str(report),
         "-r", str(ROOT / "requirements-deploy.txt"), "-c", str(ROOT / "requirements.lock")],
        check=True, capture_output=True,
    )  # fmt: skip
    lock = pins(ROOT / "requirements.lock")
    resolved = json.loads(report.read_text())["install"]
    assert {norm(p["metadata"]["name"]) for p in resolved} >= set(pins(ROOT / "requirements-deploy.txt"))
    for package in resolved:
        name, version = norm(package["metadata"]["name"]), package["metadata"]["version"]
        assert lock.get(name) == version, f"the image would install {name}=={version}, unpinned in the lock"
