"""The lock (made by a resolver, scripts/lock.py) pins everything the venv and the Docker image
install; the three requirement sets stay apart."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[[a-z0-9,_-]+\])?==(\S+)$")  # name[extras]==version


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
    for direct in ("requirements.txt", "requirements-test.txt", "requirements-deploy.txt"):
        for name, version in pins(ROOT / direct).items():
            assert lock.get(name) == version, f"{direct}: {name}=={version}, lock has {lock.get(name)}"


def test_the_venv_is_the_lock():
    lock = pins(ROOT / "requirements.lock")
    for dist in metadata.distributions():
        name = norm(dist.metadata["Name"])
        if name in ("pip", "setuptools", "wheel", "driftloop"):  # driftloop: this project, installed for its command
            continue
        assert lock.get(name) == dist.version, f"installed {name}=={dist.version}, lock has {lock.get(name)}"


def test_the_image_set_resolves_inside_the_lock_without_test_tools(tmp_path):
    """What the image installs (runtime + deploy under the lock, as docker/airflow.Dockerfile does)
    resolves to locked versions only, and none of the test tools."""
    out = tmp_path / "image.txt"
    subprocess.run(
        [str(Path(sys.executable).with_name("uv")), "pip", "compile", "requirements.txt", "requirements-deploy.txt",
         "-c", "requirements.lock", "--python-version", "3.11", "--no-header", "--no-annotate", "-o", str(out), "--quiet"],
        check=True, cwd=ROOT, capture_output=True,
    )  # fmt: skip
    lock, image = pins(ROOT / "requirements.lock"), pins(out)
    assert {name: version for name, version in image.items() if lock.get(name) != version} == {}
    assert not {"pytest", "pytest-timeout", "ruff", "uv", "moto"} & set(image)
    assert {"apache-airflow-providers-fab", "apache-airflow-providers-celery", "psycopg2-binary", "s3fs", "deltalake"} <= set(image)


def test_the_sets_are_apart_and_the_image_installs_no_test_tools():
    runtime, test, deploy = (set(pins(ROOT / f)) for f in ("requirements.txt", "requirements-test.txt", "requirements-deploy.txt"))
    assert not runtime & test and not test & deploy
    assert {"pytest", "ruff", "moto"} <= test and {"s3fs", "deltalake"} <= runtime
    assert {"apache-airflow-providers-fab", "apache-airflow-providers-celery", "mlflow"} <= deploy  # mlflow[auth]
    dockerfile = (ROOT / "docker" / "airflow.Dockerfile").read_text()
    assert "requirements-deploy.txt" in dockerfile and "requirements-test.txt" not in dockerfile


def test_the_lock_is_what_the_resolver_makes_of_the_requirements(tmp_path):
    """Re-resolving with the lock as the preference changes nothing: nobody edited a pin by hand or
    forgot `make lock` after editing a requirements file (uv reads PyPI, reachable here)."""
    out = tmp_path / "lock.txt"
    (out).write_text((ROOT / "requirements.lock").read_text())
    subprocess.run(
        [str(Path(sys.executable).with_name("uv")), "pip", "compile", "requirements.txt", "requirements-test.txt",
         "requirements-deploy.txt", "--python-version", "3.11", "--no-header", "--annotation-style", "line", "-o", str(out), "--quiet"],
        check=True, cwd=ROOT, capture_output=True,
    )  # fmt: skip
    assert pins(out) == pins(ROOT / "requirements.lock")
