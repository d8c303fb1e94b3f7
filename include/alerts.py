"""Alerts: what a person should hear about, said once, to a webhook and to storage.

An alert is built from what a task returned (a promotion, a rollback, a degraded champion, a
drift-started retrain) or from a failure (a quarantined batch, a broken window, a crash). Every
alert is kept as ``alerts/<key>.json`` under ``storage``; with a webhook URL it is also POSTed as
JSON whose ``text`` field suits Slack-style incoming webhooks. The key names the DAG run, task and
kind, so a re-run task does not send an alert that was delivered already.

The webhook URL is a secret: the Airflow side reads it from a connection (``alerts.connection``)
and passes it in; nothing here reads Airflow or the environment.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass

from include.registry import strip_userinfo
from include.storage import Storage, safe_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alert:
    kind: str
    title: str
    text: str
    dag_id: str
    run_id: str
    task_id: str
    link: str | None = None
    map_index: int = -1
    try_number: int | None = None  # failures only: a cleared task that fails again is news
    # what the alert is about, when that outlives one run (a degraded champion and the intervals
    # of its evidence): the alert is then sent once per subject, whichever run finds it again
    subject: str | None = None

    @property
    def key(self) -> str:
        if self.subject is not None:
            return safe_name(f"{self.dag_id}__{self.kind}__{self.subject}")
        task = self.task_id if self.map_index < 0 else f"{self.task_id}_{self.map_index}"
        attempt = "" if self.try_number is None else f"__try{self.try_number}"
        return safe_name(f"{self.dag_id}__{self.run_id}__{task}__{self.kind}{attempt}")

    def payload(self) -> dict:
        # an error message may carry a tracking URI with its password (MLflow names the URL it
        # could not reach): no credentials leave driftloop in an alert
        fields = {k: strip_userinfo(v) if isinstance(v, str) else v for k, v in asdict(self).items()}
        lines = [f"[driftloop] {fields['title']}", fields["text"]]
        if fields["link"]:
            lines.append(fields["link"])
        return {"text": "\n".join(lines), "driftloop": fields}


def failure(
    name: str, dag_id: str, run_id: str, task_id: str, error: str, log_url: str | None, map_index: int = -1, try_number: int | None = None
) -> Alert:
    """A task that failed for good (no retries left): its error message says what broke."""
    return Alert("failure", f"{name}: {dag_id}.{task_id} failed", error, dag_id, run_id, task_id, log_url, map_index, try_number)


def from_result(name: str, dag_id: str, run_id: str, task_id: str, result: dict | None, map_index: int = -1) -> Alert | None:
    """The alert a task's result calls for, or None when there is nothing to tell.

    Reads the result's ``kind`` (every result a task alerts on has one): ``promotion`` (retrain's
    ``promote``, monitor's ``rollout``), ``guard`` (monitor's ``guard``), ``verdict`` (monitor's
    ``drift``: a business metric that fell), ``drift_trigger`` (drift_watch's ``mark_handled``) and
    ``gate`` (ingest's ``gate``: landing files that belong to no window). Any other result says
    nothing.
    """
    if not isinstance(result, dict):
        return None
    handler = _BY_KIND.get(result.get("kind"))
    return handler(name, dag_id, run_id, task_id, result, map_index) if handler else None


def _promotion(name: str, dag_id: str, run_id: str, task_id: str, result: dict, map_index: int) -> Alert | None:
    link = result.get("mlflow_url")
    if result["promoted"]:
        return Alert(
            "promotion", f"{name}: v{result['champion']} is the new champion", result["reason"], dag_id, run_id, task_id, link, map_index
        )
    if not result.get("refused_by"):  # merely not better than the champion, or under rollout: nothing to hear about
        return None
    which = f"v{result['challenger']}" if result.get("challenger") is not None else "the challenger"
    title = f"{name}: {which} refused by the {', '.join(result['refused_by'])} check(s)"
    return Alert("rejected", title, result["reason"], dag_id, run_id, task_id, link, map_index)


def _guard(name: str, dag_id: str, run_id: str, task_id: str, result: dict, map_index: int) -> Alert | None:
    link = result.get("mlflow_url")
    if result.get("rolled_back"):
        title = f"{name}: champion rolled back from v{result['from']} to v{result['champion']}"
        return Alert("rollback", title, result["reason"], dag_id, run_id, task_id, link, map_index)
    if not result["degraded"]:
        return None
    why = "monitoring.rollback is manual" if result.get("mode") == "manual" else "not rolled back: the evidence is stale"
    title = f"{name}: champion v{result['champion']} trails its shadow ({why})"
    # once per piece of evidence: a monitor run that finds the same intervals again is quiet
    evidence = result.get("evidence")
    subject = f"v{result['champion']}__{result.get('mode')}__{'_'.join(evidence)}" if evidence else None
    return Alert("degraded", title, result["reason"], dag_id, run_id, task_id, link, map_index, subject=subject)


def _verdict(name: str, dag_id: str, run_id: str, task_id: str, result: dict, map_index: int) -> Alert | None:
    worth = result.get("business")
    if not (isinstance(worth, dict) and worth.get("fell")):
        return None
    title = f"{name}: {worth['metric']} fell to {worth['value']:.4f} in [{result['start']}, {result['end']})"
    text = (
        f"{worth['metric']} {worth['value']:.4f} on {worth['rows']} rows against {worth['reference']:.4f} on champion "
        f"v{result.get('model_version')}'s out-of-time rows: more than business.max_drop {worth['max_drop']} below"
    )
    return Alert("business", title, text, dag_id, run_id, task_id, result.get("mlflow_url"), map_index)


def _drift_trigger(name: str, dag_id: str, run_id: str, task_id: str, result: dict, map_index: int) -> Alert:
    text = f"drifted intervals {', '.join(result['verdicts'])}; retrain run {result['retrain_run_id']} started"
    return Alert("drift", f"{name}: drift detected, retraining", text, dag_id, run_id, task_id, result.get("mlflow_url"), map_index)


def _gate(name: str, dag_id: str, run_id: str, task_id: str, result: dict, map_index: int) -> Alert | None:
    return unplaced(name, dag_id, run_id, task_id, result.get("unplaced") or [], map_index)


_BY_KIND = {"promotion": _promotion, "guard": _guard, "verdict": _verdict, "drift_trigger": _drift_trigger, "gate": _gate}


def unplaced(name: str, dag_id: str, run_id: str, task_id: str, files: list[dict], map_index: int = -1) -> Alert | None:
    """Landing files that belong to no window (``Quarantine.unplaced``), or None if none.
    Sent whether the gate then passed (from its result) or failed (from its exception)."""
    if not files:
        return None
    text = "; ".join(
        f"{u['file']}{f' ({rows} rows)' if (rows := u.get('rows')) is not None else ''}: {u['error']} (copy and report in {u['quarantine']})"
        for u in files
    )
    title = f"{name}: {len(files)} landing file(s) belong to no window"
    return Alert("unplaced", title, text, dag_id, run_id, task_id, None, map_index)


def late(name: str, dag_id: str, run_id: str, task_id: str, files: list[dict], map_index: int = -1) -> Alert | None:
    """Landing files that arrived (or changed) after a window they have rows in was published
    (``LandingZone.late_files``), or None if none. The text names each file, window and row count,
    and how to take them in."""
    if not files:
        return None
    parts = []
    for f in files:
        spans = ", ".join(f"[{w['start']}, {w['end']}) {w['rows']} rows" for w in f["windows"])
        parts.append(f"{f['file']}: {spans}")
    text = (
        "; ".join(parts) + '. Re-ingest those windows (ingest with {"start": ..., "end": ...}), '
        "or set schedule.late: reingest to have ingest do it."
    )
    title = f"{name}: {len(files)} landing file(s) arrived after their window was published"
    return Alert("late", title, text, dag_id, run_id, task_id, None, map_index)


def quality_warnings(name: str, dag_id: str, run_id: str, task_id: str, warnings: list[str], map_index: int = -1) -> Alert | None:
    """A batch that passed the gate with findings of rules set to ``warn`` (or an accepted
    quarantine entry), or None if there were none."""
    if not warnings:
        return None
    title = f"{name}: {dag_id}.{task_id} passed with {len(warnings)} warning(s)"
    return Alert("quality", title, "\n".join(warnings), dag_id, run_id, task_id, None, map_index)


def result_alerts(name: str, dag_id: str, run_id: str, task_id: str, result: dict | None, map_index: int = -1) -> list[Alert]:
    """Every alert a task's result calls for: ``from_result``'s, plus late landing files and the
    gate's warnings."""
    found = [from_result(name, dag_id, run_id, task_id, result, map_index)]
    if isinstance(result, dict) and result.get("kind") in ("gate", "publish"):
        found.append(late(name, dag_id, run_id, task_id, result.get("late") or [], map_index))
        found.append(quality_warnings(name, dag_id, run_id, task_id, result.get("warnings") or [], map_index))
    return [a for a in found if a is not None]


def deliver(alert: Alert, storage: Storage, webhook: str | None, timeout: float = 10.0) -> dict:
    """Keeps the alert in storage and POSTs it to ``webhook`` (if given), once.

    A webhook that cannot be reached is logged as an error and recorded (``delivered: false``,
    with the error) but never fails the task: the pipeline's work is done by then. A later re-run
    of the task tries again; an alert already delivered is not sent twice.

    Returns:
        The stored record: the payload plus ``delivered`` (None without a webhook) and ``error``.
    """
    path = storage.path("alerts", f"{alert.key}.json")
    if storage.exists(path):
        previous = storage.read_json(path)
        if previous.get("delivered") or (previous.get("delivered") is None and webhook is None):
            return previous
    record = {**alert.payload(), "delivered": None, "error": None}
    if webhook:
        body = json.dumps(alert.payload()).encode()
        request = urllib.request.Request(webhook, data=body, headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (the URL is the operator's own webhook)
                record["delivered"] = 200 <= response.status < 300
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            record["delivered"], record["error"] = False, f"{type(err).__name__}: {err}"
            log.error("alert %s not delivered to the webhook: %s", alert.key, record["error"])
    storage.write_json(record, path)
    log.warning("alert: %s", alert.payload()["text"])
    return record
