"""Retries for faults, never for bad data: which errors fail a task at once (driftloop's own) and
which propagate so that Airflow retries the task (everything else)."""

from __future__ import annotations

from datetime import timedelta

import pytest


def _errors():
    from include.champion import ChampionMoved
    from include.config import ConfigError
    from include.errors import DataError, RegistryError, RunConfError
    from include.promotion import PromotionRejected
    from include.quality import DataQualityError
    from include.windows import NoWindow

    return [ConfigError, DataError, DataQualityError, NoWindow, RunConfError, RegistryError, ChampionMoved, PromotionRejected]


@pytest.mark.parametrize("error", _errors(), ids=lambda e: e.__name__)
def test_driftloop_errors_fail_without_retry(error):
    from airflow.sdk.exceptions import AirflowFailException

    from driftloop_airflow import fail_without_retry

    with pytest.raises(AirflowFailException, match="what broke") as caught, fail_without_retry():
        raise error("what broke", {}) if error.__name__ == "DataQualityError" else error("what broke")
    assert isinstance(caught.value.__cause__, error)


@pytest.mark.parametrize("fault", [ValueError("a library's own"), KeyError("x"), OSError("disk"), TimeoutError("slow")], ids=repr)
def test_other_errors_propagate_so_the_task_retries(fault):
    from driftloop_airflow import fail_without_retry

    with pytest.raises(type(fault)), fail_without_retry():
        raise fault


def test_a_transient_mlflow_error_is_retried():
    from mlflow.exceptions import MlflowException

    from driftloop_airflow import fail_without_retry

    with pytest.raises(MlflowException), fail_without_retry():
        raise MlflowException("API request to http://127.0.0.1:1/api/2.0/mlflow/registered-models/get failed")


def test_a_broad_error_type_is_refused():
    from driftloop_airflow import fail_without_retry

    with pytest.raises(TypeError, match="ValueError"), fail_without_retry(ValueError):
        pass


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"end": "2026-02-02", "window": "90 days"}, "window"),
        ({"end": "2026-02-02", "window": "0D"}, "window"),
        ({"end": "not a date"}, "end"),
        ({}, "no end"),
        ({"end": "2026-02-02", "start": "2026-01-05", "window": "14D"}, "not both"),
        ({"end": "2026-02-02", "start": "2026-02-09"}, "start/end"),
        ({"end": "2026-02-02", "start": "soon"}, "start/end"),
    ],
)
def test_a_wrong_retrain_conf_is_a_run_conf_error(params, match):
    from include.errors import RunConfError
    from include.windows import retrain_window

    run_after = "2026-03-01T10:00:00Z" if params else None
    with pytest.raises(RunConfError, match=match):
        retrain_window(params, None, run_after, timedelta(days=28))


def test_retrain_window():
    from include.windows import retrain_window

    w = retrain_window({"end": "2026-02-02", "window": "14D"}, None, "2026-03-01", timedelta(days=28))
    assert (w.start.isoformat(), w.end.isoformat()) == ("2026-01-19T00:00:00+00:00", "2026-02-02T00:00:00+00:00")
    w = retrain_window({}, "2026-02-09T00:00:00Z", "2026-03-01", timedelta(days=7))
    assert w.start.isoformat() == "2026-02-02T00:00:00+00:00"
    # a drift retrain's conf gives its start: the onset
    w = retrain_window({"end": "2026-02-02", "start": "2026-01-26T00:00:00+00:00"}, None, "2026-03-01", timedelta(days=28))
    assert (w.start.isoformat(), w.end.isoformat()) == ("2026-01-26T00:00:00+00:00", "2026-02-02T00:00:00+00:00")


@pytest.mark.parametrize("params", [{"start": "2026-01-05", "end": "nonsense"}, {"start": "2026-01-12", "end": "2026-01-05"}])
def test_an_unreadable_or_empty_conf_window_is_no_window(params):
    from include.windows import NoWindow, interval_window

    with pytest.raises(NoWindow, match="run conf"):
        interval_window(params)


def test_the_settings_loader_bounds_mlflow_and_masks_its_password(tmp_path, monkeypatch):
    """Every task loads its config through ``driftloop_airflow.settings()``: the MLflow client's
    HTTP bounds are set from it, and the tracking URI's password is masked in task logs."""
    from airflow.sdk._shared.secrets_masker.secrets_masker import redact
    from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_MAX_RETRIES, MLFLOW_HTTP_REQUEST_TIMEOUT

    from driftloop_airflow import settings
    from tests.conftest import write_config

    for var in ("MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"):
        monkeypatch.setenv(var, "0")
    monkeypatch.setenv("DRIFTLOOP_CONFIG", str(write_config(tmp_path, mlflow={"http_timeout": 9, "http_retries": 2})))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://alice:pw-9f83kq@mlflow.internal:5000")
    assert settings().mlflow.http_timeout == 9
    assert (MLFLOW_HTTP_REQUEST_TIMEOUT.get(), MLFLOW_HTTP_REQUEST_MAX_RETRIES.get()) == (9, 2)
    assert "pw-9f83kq" not in redact("connection to http://alice:pw-9f83kq@mlflow.internal:5000 refused")


def test_a_broken_config_fails_the_task_at_once(tmp_path, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    from driftloop_airflow import settings
    from tests.conftest import write_config

    monkeypatch.setenv("DRIFTLOOP_CONFIG", str(write_config(tmp_path, mlflow={"http_retries": 99})))
    with pytest.raises(AirflowFailException, match="http_retries"):
        settings()
