"""End-to-end tests drive the project's own scripts (the local services, the demo's REST client)."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "scripts") not in sys.path:
    sys.path.insert(0, str(ROOT / "scripts"))


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """``make demo``'s play on services of its own (free ports, a throw-away home): shared by the
    loop's tests and the browser's (test_demo_screens.py runs after test_demo_loop.py)."""
    import demo as demo_script
    from services import free_port, stop

    from tests.conftest import write_config

    folder = tmp_path_factory.mktemp("e2e")
    # storage and landing apart, as the config requires; the demo makes (and wipes) both
    config = write_config(folder, name="car_loans_e2e")
    home = folder / "services"
    ports = [free_port(), free_port(), free_port()]
    try:
        result = demo_script.main(
            [
                *("--home", str(home), "--config", str(config)),
                *("--airflow-port", str(ports[0]), "--mlflow-port", str(ports[1]), "--evidently-port", str(ports[2])),
            ]
        )
        yield result
    finally:
        stop(home)
