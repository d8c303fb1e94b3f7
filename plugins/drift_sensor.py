"""The DriftSensor: waits until the monitor's verdicts call for a retrain.

``poke`` delegates to ``include.monitoring.find_pending_drift`` (unit-tested there); the sensor
only adds Airflow's waiting: ``mode="reschedule"`` frees the worker slot between pokes, and the
timeout is explicit.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import BaseSensorOperator, PokeReturnValue


class DriftSensor(BaseSensorOperator):
    """Succeeds with the pending drift (``include.monitoring.PendingDrift``: its end, the drifted intervals, the retrain run id) as its XCom value
    when the latest ``monitoring.consecutive`` verdicts are drifted, unhandled and outside the
    cooldown.

    Args:
        config_path: a config file; by default the one ``DRIFTLOOP_CONFIG`` names.
    """

    template_fields = ("config_path",)

    def __init__(self, *, config_path: str | None = None, **kwargs) -> None:
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("timeout", timedelta(minutes=50))
        kwargs.setdefault("poke_interval", 60)
        super().__init__(**kwargs)
        self.config_path = config_path

    def poke(self, context) -> PokeReturnValue:
        from include.config import load_settings
        from include.monitoring import find_pending_drift

        pending = find_pending_drift(load_settings(self.config_path))
        if pending is None:
            self.log.info("no pending drift")
            return PokeReturnValue(is_done=False)
        self.log.info("drift to answer: %s", pending)
        return PokeReturnValue(is_done=True, xcom_value=pending)
