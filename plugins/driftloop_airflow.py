"""Airflow-side building blocks shared by the driftloop DAGs: assets, default task arguments,
pools, timetables from the config, and the translation of driftloop's own errors into non-retried
failures.

Kept light: it imports only ``airflow.sdk``, ``pendulum`` and the alert notifier, so DAG files
parse fast. Run as a script (``python plugins/driftloop_airflow.py``, Airflow's metadata DB
migrated), it creates the pools: the local services, the cluster and the compose init do.
"""

from __future__ import annotations

import contextlib
import os
from datetime import timedelta

import pendulum
from airflow.sdk import Asset, CronDataIntervalTimetable, CronTriggerTimetable, Param

from alert_notifier import AlertNotifier

# Emitted by ingest when new curated rows exist; the event's extra carries {"start", "end"}.
CURATED = Asset(name="driftloop_curated", uri="x-driftloop://curated")
# Emitted by monitor when a verdict is recorded; drift_watch wakes up on it.
VERDICTS = Asset(name="driftloop_verdicts", uri="x-driftloop://verdicts")
# Emitted by monitor's catch_up when curated events arrived during its run: it wakes monitor again.
# Airflow 3.3 hands an asset-triggered run only the events up to its trigger time and then clears
# the queue, so events that came in while monitor waited for max_active_runs were taken by no run
# until the next event came (apache/airflow#56050); the next run takes them (no window is lost or
# checked twice), and this event makes sure there is a next run.
MONITOR_BACKLOG = Asset(name="driftloop_monitor_backlog", uri="x-driftloop://monitor-backlog")

DEFAULT_ARGS = {
    "owner": "driftloop",
    # faults (a storage or MLflow blip, a killed worker) are retried; bad data and broken configs
    # are not (fail_without_retry)
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    # a task that hangs (a stalled connection, a lock never released) fails and is retried rather
    # than hold its pool slot for ever; tasks that do more (train) set their own
    "execution_timeout": timedelta(minutes=30),
    # a task that failed for good (retries spent, or a gate/config error) sends a "failure" alert
    "on_failure_callback": AlertNotifier("failure"),
}

# on_success_callback of the tasks whose result may call for an alert (promotion, rollback, drift)
ALERT_ON_RESULT = AlertNotifier("result")

TAGS = ["driftloop"]

# One-slot pools: what must never run twice at once, whatever the DAG's max_active_runs (a
# backfill has its own limit). Created by the local services, the cluster and the compose init.
CURATED_POOL = "driftloop_curated"  # writes the landing manifest, the quarantine or the curated table
REGISTRY_POOL = "driftloop_registry"  # moves an alias of the registered model
POOLS = {
    CURATED_POOL: "driftloop: one writer of the landing manifest and the curated table at a time",
    REGISTRY_POOL: "driftloop: one move of @champion at a time",
}


# An ISO date or date-time, with or without a zone (none: UTC). Not `format: "date-time"`: whether
# jsonschema checks that format depends on an optional package (rfc3339-validator) being installed,
# so the same trigger would pass on one machine and fail on another, and RFC 3339 refuses a time
# without a zone, which driftloop accepts.
ISO_TIME = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}(:?\d{2})?)?$"


def time_param(description: str, title: str | None = None) -> Param:
    """A run-conf field holding an optional ISO date or date-time."""
    extra = {"title": title} if title else {}
    return Param(None, type=["null", "string"], pattern=ISO_TIME, description=f"{description}; ISO date or date-time", **extra)


def worker_hostname() -> str:
    """``[core] hostname_callable`` of the cluster's Celery workers: both run on one machine, so the
    machine name alone does not tell them apart in a task instance's ``hostname``."""
    import socket

    name = os.environ.get("DRIFTLOOP_WORKER_NAME")
    return f"{name}@{socket.gethostname()}" if name else socket.gethostname()


def start_date(value: str) -> pendulum.DateTime:
    return pendulum.parse(value, tz="UTC")


def interval_schedule(cron: str | None):
    """A cron schedule whose runs cover the period since the previous run (or None)."""
    return CronDataIntervalTimetable(cron, timezone="UTC") if cron else None


def trigger_schedule(cron: str | None):
    """A cron schedule that fires at each tick (the tick is the run's end of window)."""
    return CronTriggerTimetable(cron, timezone="UTC") if cron else None


@contextlib.contextmanager
def fail_without_retry(*errors: type[BaseException]):
    """Turns driftloop's own errors (``include.errors.DriftloopError``: bad data, a broken config,
    a registry in the wrong state) into ``AirflowFailException``: retrying cannot fix them, and the
    message must reach the log and the UI as it is. Anything else (a network blip, a server
    restart, a bug) propagates, and the task retries.

    Args:
        errors: narrower ``DriftloopError`` types, named for the reader; anything broader (a bare
            ``ValueError`` would also stop retries of a library's transient errors) is refused.
    """
    from airflow.sdk.exceptions import AirflowFailException

    from include.errors import DriftloopError

    broad = [e.__name__ for e in errors if not issubclass(e, DriftloopError)]
    if broad:
        raise TypeError(f"fail_without_retry takes driftloop's own error types only, not {', '.join(broad)}")
    try:
        yield
    except DriftloopError as err:
        raise AirflowFailException(str(err)) from err


def _mask_tracking_credentials() -> None:
    """Registers the MLflow password (inside ``MLFLOW_TRACKING_URI``, or in
    ``MLFLOW_TRACKING_PASSWORD``) with Airflow's secrets masker: a traceback or a library's log
    line that prints the URI then shows ``***`` in the task log."""
    from urllib.parse import urlsplit

    from airflow.sdk.log import mask_secret

    for secret in (urlsplit(os.environ.get("MLFLOW_TRACKING_URI", "")).password, os.environ.get("MLFLOW_TRACKING_PASSWORD")):
        if secret:
            mask_secret(secret)


def settings(check_metric: bool = False):
    """The full config, loaded inside a task (never at parse time), with the MLflow client's HTTP
    bounds applied from it before the task's first request. A broken config fails the task at
    once: retrying cannot fix it.

    ``model.metric`` is checked against scikit-learn's scorers only with ``check_metric`` (it
    imports scikit-learn, 2 s): by the first task of ``retrain`` and by ``monitor``'s ``score``,
    which score anyway; the gate, publish, drift and alert tasks never import scikit-learn."""
    from include.config import load_settings
    from include.registry import configure_mlflow

    with fail_without_retry():
        loaded = load_settings(check_metric=check_metric)
    configure_mlflow(loaded.mlflow)
    _mask_tracking_credentials()
    return loaded


def create_pools() -> list[str]:
    """Creates the ``POOLS`` (one slot each), or resets them to one slot. Needs Airflow's metadata
    DB migrated. Returns their names."""
    from airflow.models.pool import Pool

    for name, description in POOLS.items():
        Pool.create_or_update_pool(name, 1, description, include_deferred=False)
    return list(POOLS)


if __name__ == "__main__":
    import sys

    sys.stdout.write(f"pools: {', '.join(create_pools())}\n")
