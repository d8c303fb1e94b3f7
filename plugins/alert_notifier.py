"""Airflow's side of driftloop's alerts: a notifier used as task callback.

``AlertNotifier("failure")`` is every driftloop task's ``on_failure_callback`` (it runs once a task
has failed for good, after its retries). ``AlertNotifier("result")`` is the ``on_success_callback``
of the tasks whose result may deserve an alert (promote, guard, mark_handled). The webhook URL is
read from the Airflow connection named by ``alerts.connection`` (default ``driftloop_alerts``), for
example ``AIRFLOW_CONN_DRIFTLOOP_ALERTS='https://hooks.slack.com/services/...'``; without that
connection alerts are only kept under ``<storage>/alerts/`` and logged.

Kept light: heavy imports happen inside ``notify``.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from airflow.sdk import BaseNotifier

log = logging.getLogger(__name__)


def webhook_url(conn) -> str:
    """The URL an Airflow connection stands for: a full URL in ``host``, or scheme (connection
    type http/https), host, port, path (``schema``) and query (extras) as an HTTP connection spells
    them."""
    if (conn.host or "").startswith(("http://", "https://")):
        return conn.host
    scheme = conn.conn_type if conn.conn_type in ("http", "https") else "https"
    port = f":{conn.port}" if conn.port else ""
    query = f"?{urlencode(conn.extra_dejson)}" if conn.extra_dejson else ""
    return f"{scheme}://{conn.host}{port}/{conn.schema or ''}{query}"


def connection_webhook(conn_id: str | None) -> str | None:
    """The webhook URL of connection ``conn_id``, or None when it is not defined."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    if not conn_id:
        return None
    try:
        return webhook_url(Connection.get(conn_id))
    except AirflowNotFoundException:
        return None


class AlertNotifier(BaseNotifier):
    """Turns a task's failure, or its result, into a driftloop alert.

    Args:
        on: ``"failure"`` (use as on_failure_callback) or ``"result"`` (as on_success_callback).
    """

    def __init__(self, on: str) -> None:
        super().__init__()
        if on not in ("failure", "result"):
            raise ValueError(f"AlertNotifier(on=...) must be 'failure' or 'result', not {on!r}")
        self.on = on

    def notify(self, context) -> None:
        from include import alerts
        from include.config import ConfigError, load_settings
        from include.storage import Storage

        ti = context["ti"]
        try:
            settings = load_settings(check_metric=False)  # alerts never score; a wrong metric is reported
        except ConfigError as err:  # the failure being reported may be this very error
            log.error("no alert sent: the config does not load: %s", err)
            return
        if self.on == "failure":
            error = context.get("exception")
            message = str(error) if error else "failed"
            sent = [alerts.failure(settings.name, ti.dag_id, ti.run_id, ti.task_id, message, ti.log_url, ti.map_index, ti.try_number)]
            # a failed gate may also have found landing files that belong to no window (its
            # DataQualityError arrives as the cause of an AirflowFailException: fail_without_retry)
            files = getattr(error, "unplaced", None) or getattr(getattr(error, "__cause__", None), "unplaced", [])
            sent.append(alerts.unplaced(settings.name, ti.dag_id, ti.run_id, ti.task_id, files, ti.map_index))
            late = getattr(error, "late", None) or getattr(getattr(error, "__cause__", None), "late", [])
            sent.append(alerts.late(settings.name, ti.dag_id, ti.run_id, ti.task_id, late, ti.map_index))
        else:
            result = ti.xcom_pull(task_ids=ti.task_id, map_indexes=ti.map_index)
            sent = alerts.result_alerts(settings.name, ti.dag_id, ti.run_id, ti.task_id, result, ti.map_index)
        sent = [a for a in sent if a is not None and a.kind in settings.alerts.on]
        if not sent:
            return
        storage, webhook = Storage.from_settings(settings), connection_webhook(settings.alerts.connection)
        for alert in sent:
            alerts.deliver(alert, storage, webhook)
