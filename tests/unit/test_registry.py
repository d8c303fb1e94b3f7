"""The MLflow adapter's pure parts (its MLflow calls are tested against a real server in tests/integration)."""


def test_mlflow_notes_on_stderr_go_to_the_log_at_info(caplog):
    """Airflow files a task's stderr as errors; MLflow's progress notes are not errors."""
    import logging
    import sys

    from include import registry

    with caplog.at_level(logging.INFO, logger="include.registry"), registry._mlflow_notes_to_log():
        print("Created version '2' of model 'car_loans'.", file=sys.stderr)
        sys.stderr.write("no newline at the end")
    assert [r.getMessage() for r in caplog.records] == [
        "mlflow: Created version '2' of model 'car_loans'.",
        "mlflow: no newline at the end",
    ]
    assert all(r.levelno == logging.INFO for r in caplog.records)


import pytest  # noqa: E402

SECRET_URI = "http://alice:s3cr3t@mlflow.internal:5000"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (SECRET_URI, "http://mlflow.internal:5000"),
        ("https://bob@mlflow.example/x?y=1", "https://mlflow.example/x?y=1"),
        ("http://127.0.0.1:5000/#/models/m", "http://127.0.0.1:5000/#/models/m"),  # nothing to strip
        (
            f"API request to {SECRET_URI}/api/2.0/mlflow/runs/get failed; also s3://key:secret@bucket/x",
            "API request to http://mlflow.internal:5000/api/2.0/mlflow/runs/get failed; also s3://bucket/x",
        ),
        ("user@example.com is not a URL", "user@example.com is not a URL"),
    ],
)
def test_strip_userinfo(text, expected):
    from include.registry import strip_userinfo

    assert strip_userinfo(text) == expected


def test_links_never_carry_the_tracking_credentials(monkeypatch):
    """A tracking URI with user and password becomes a link (XCom, the MLflow button, alerts)
    without them."""
    import mlflow

    from include import registry

    monkeypatch.setenv("MLFLOW_TRACKING_URI", SECRET_URI)
    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", None)
    assert mlflow.get_tracking_uri() == SECRET_URI
    monkeypatch.delenv("MLFLOW_PUBLIC_URL", raising=False)
    assert registry.version_url("car_loans", 3) == "http://mlflow.internal:5000/#/models/car_loans/versions/3"


def test_links_use_the_public_url_when_set(monkeypatch):
    """Workers may reach MLflow as http://mlflow:5000 (compose), a host no browser resolves: links
    in the UI and alerts use MLFLOW_PUBLIC_URL."""
    import mlflow

    from include import registry

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", None)
    monkeypatch.setenv("MLFLOW_PUBLIC_URL", "https://mlflow.example.com/")
    assert registry.version_url("car_loans", 3) == "https://mlflow.example.com/#/models/car_loans/versions/3"
    monkeypatch.setenv("MLFLOW_PUBLIC_URL", "https://ops:pw@mlflow.example.com")  # never a password in a link
    assert registry.version_url("car_loans", 3) == "https://mlflow.example.com/#/models/car_loans/versions/3"


def test_mlflow_notes_lose_their_credentials(caplog):
    import logging
    import sys

    from include import registry

    with caplog.at_level(logging.INFO, logger="include.registry"), registry._mlflow_notes_to_log():
        print(f"View run at {SECRET_URI}/#/experiments/1", file=sys.stderr)
    assert "s3cr3t" not in caplog.text and "http://mlflow.internal:5000/#/experiments/1" in caplog.text


def test_configure_mlflow_bounds_the_clients_http_waits(monkeypatch, tmp_path):
    """The config's mlflow section reaches MLflow's own reading of its documented variables."""
    from mlflow.environment_variables import (
        MLFLOW_HTTP_REQUEST_MAX_RETRIES,
        MLFLOW_HTTP_REQUEST_TIMEOUT,
        MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT,
    )

    from include.config import load_settings
    from include.registry import configure_mlflow
    from tests.conftest import write_config

    for var in ("MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"):
        monkeypatch.setenv(var, "0")  # restored after the test
    defaults = load_settings(write_config(tmp_path))
    assert (defaults.mlflow.http_timeout, defaults.mlflow.http_retries) == (60, 3)
    settings = load_settings(write_config(tmp_path, mlflow={"http_timeout": 7, "http_retries": 1}))
    configure_mlflow(settings.mlflow)
    assert MLFLOW_HTTP_REQUEST_TIMEOUT.get() == 7
    assert MLFLOW_HTTP_REQUEST_MAX_RETRIES.get() == 1
    assert MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT.get() is True


@pytest.mark.parametrize("bad", [{"http_retries": 11}, {"http_timeout": 0}, {"timeout": 5}])
def test_mlflow_section_is_checked(tmp_path, bad):
    from include.config import ConfigError, load_settings
    from tests.conftest import write_config

    with pytest.raises(ConfigError, match="mlflow"):
        load_settings(write_config(tmp_path, mlflow=bad))


@pytest.mark.parametrize(
    ("history", "champion", "settled"),
    [
        ([1, 2], 2, [1, 2]),
        ([1, 2], 1, [1]),  # a promotion to 2 wrote the history, then died before the alias moved
        ([1, 2, 3], 2, [1, 2]),
        ([1, 2, 1], 1, [1, 2, 1]),  # a rollback to 1 by hand: its last entry counts
        ([1, 2], 5, [1, 2]),  # an alias set by hand in MLflow: the history as it is
        ([1, 2], None, [1, 2]),
        ([], None, []),
    ],
)
def test_settled_history(history, champion, settled):
    from include.champion import settled_history

    assert settled_history(history, champion) == settled


def test_a_password_with_an_at_sign_is_stripped_whole():
    from include.registry import strip_userinfo

    assert strip_userinfo("http://user:p@ss@mlflow:5000/#/x") == "http://mlflow:5000/#/x"
    assert strip_userinfo("https://h2/path@tag") == "https://h2/path@tag"  # an @ after the host is not userinfo


def test_move_records_from_before_move_plans_are_read_as_plans():
    from include.champion import upgraded_move

    guard = {"degraded": True, "rolled_back": True, "from": 3, "champion": 2, "history": [1, 2], "verdicts": ["k"], "reason": "trails"}
    assert upgraded_move(guard) == {**guard, "to": 2, "action": "rollback", "applied": False}
    rollback = {"from": 3, "to": 1, "history": [1], "applied": True}
    assert upgraded_move(rollback) == {**rollback, "action": "rollback", "reason": "rollback to v1"}
    decision = {"promoted": False, "champion": 4, "reason": "worse"}  # a promote's decision: no move
    assert upgraded_move(decision) == decision
    plan = {"action": "promote", "from": 1, "to": 2, "history": [1, 2], "reason": "better", "applied": False}
    assert upgraded_move(plan) == plan


def test_the_training_dataset_has_mlflows_schema_and_a_digest_of_every_row():
    """The dataset input is described from a sample, yet its schema is the one MLflow infers from
    every row (a gap deep in the window still makes a column optional), and its digest changes
    when any row does, not only one of the first 10,000."""
    import warnings

    import mlflow
    import numpy as np
    import pandas as pd

    from include.tracking import training_dataset

    rows = 12_000
    frame = pd.DataFrame(
        {
            "timestamp": pd.date_range("2026-03-02", periods=rows, freq="min", tz="UTC"),
            "id": np.arange(rows),
            "x": np.linspace(0.0, 1.0, rows),
            "code": np.arange(rows) % 4,
            "region": np.array(["north", "south", "east"], dtype=object)[np.arange(rows) % 3],
            "y": np.arange(rows) % 2,
        }
    )
    frame.loc[9_000, "x"] = np.nan
    frame.loc[5_000, "region"] = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # MLflow's hint on integer columns
        ours = training_dataset(frame, "loans-w1", "y")
        theirs = mlflow.data.from_pandas(frame, name="loans-w1", targets="y")
        assert ours.schema == theirs.schema
    required = {spec.name: spec.required for spec in ours.schema.inputs}
    assert required == {"timestamp": True, "id": True, "x": False, "code": True, "region": False, "y": True}
    assert ours.profile == {"num_rows": rows, "num_elements": rows * 6} and ours.targets == "y"
    assert ours.to_dict()["name"] == "loans-w1"

    changed = frame.copy()
    changed.loc[11_500, "x"] = 0.5
    assert training_dataset(changed, "loans-w1", "y").digest != ours.digest
    assert training_dataset(frame.copy(), "loans-w1", "y").digest == ours.digest
