"""The DriftSensor's poke, run directly (no scheduler): it delegates to include.monitoring."""

from drift_sensor import DriftSensor
from include.storage import Storage, Window


def _write(settings, start, end, drift):
    storage = Storage.from_settings(settings)
    w = Window.parse(start, end)
    storage.write_json(
        {**w.as_dict(), "drift": drift, "drift_share": 0.7 if drift else 0.1, "model_version": 1, "handled": None, "rows": 2000},
        storage.verdict_path(w),
    )


def test_poke_waits_then_returns_the_drift(settings):
    sensor = DriftSensor(task_id="wait_for_drift", config_path=settings.source)
    assert sensor.mode == "reschedule" and sensor.timeout > 0
    _write(settings, "2026-01-05", "2026-01-12", False)
    assert sensor.poke({}).is_done is False
    _write(settings, "2026-01-12", "2026-01-19", True)
    assert sensor.poke({}).is_done is False  # the demo config asks for two drifted intervals in a row
    _write(settings, "2026-01-19", "2026-01-26", True)
    result = sensor.poke({})
    assert result.is_done is True
    assert result.xcom_value["end"] == "2026-01-26T00:00:00+00:00"
    assert result.xcom_value["start"] == "2026-01-12T00:00:00+00:00"  # the onset: the first drifted week
    assert result.xcom_value["retrain_run_id"] == "drift__20260126T000000Z"
