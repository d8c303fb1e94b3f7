"""Airflow-side building blocks shared by the driftloop DAGs: assets, default task arguments,
timetables from the config, and the translation of gate errors into non-retried failures.

Kept light: it imports only ``airflow.sdk``, ``pendulum`` and the alert notifier, so DAG files
parse fast.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

import pendulum
from airflow.sdk import Asset, CronDataIntervalTimetable, CronTriggerTimetable

from alert_notifier import AlertNotifier

# Emitted by ingest when new curated rows exist; the event's extra carries {"start", "end"}.
CURATED = Asset(name="driftloop_curated", uri="x-driftloop://curated")
# Emitted by monitor when a verdict is recorded; drift_watch wakes up on it.
VERDICTS = Asset(name="driftloop_verdicts", uri="x-driftloop://verdicts")

DEFAULT_ARGS = {
    "owner": "driftloop",
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    # a task that failed for good (retries spent, or a gate/config error) sends a "failure" alert
    "on_failure_callback": AlertNotifier("failure"),
}

# on_success_callback of the tasks whose result may call for an alert (promotion, rollback, drift)
ALERT_ON_RESULT = AlertNotifier("result")

TAGS = ["driftloop"]


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
    """Turns the named errors (bad data, a broken config) into ``AirflowFailException``: retrying
    cannot fix them, and the message must reach the log and the UI as it is."""
    from airflow.sdk.exceptions import AirflowFailException

    try:
        yield
    except errors as err:
        raise AirflowFailException(str(err)) from err


def settings():
    """The full config, loaded inside a task (never at parse time). A broken config fails the
    task at once: retrying cannot fix it."""
    from include.config import ConfigError, load_settings

    with fail_without_retry(ConfigError):
        return load_settings()
