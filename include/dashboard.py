"""The model-health dashboard: Evidently's own UI (``evidently ui``), one project per model, one
snapshot per monitored interval.

``monitor``'s ``report`` task runs one Evidently report per interval: the data-drift preset on a
sample (the pictures) and the verdict's own figures, computed on all rows, as metrics of their own
(``VerdictValue``: drift share, live metric of the champion and of its shadow, prediction drift,
business value, champion version, rows). The same snapshot becomes the interval's HTML report (in
MLflow) and, when ``EVIDENTLY_URL`` names an Evidently UI service, a snapshot of the model's
project there, timestamped with the interval's start so the panels run in data time. A re-run
replaces the interval's snapshot (found by its ``interval`` metadata) instead of adding one.

The project's id is derived from the model's name, so every worker finds the same project without
a lookup table, and two first snapshots racing write the same project. Its panels are brought up to
date with every snapshot (the same ids each time; written only when they changed): a panel a later
driftloop adds appears on the next interval, and panels a team added in the UI are kept.

Environment: ``EVIDENTLY_URL`` (the service the workers reach), ``EVIDENTLY_PUBLIC_URL`` (the
address a browser follows, when the workers reach the service at another name), ``EVIDENTLY_SECRET``
(the service's write secret: ``evidently ui`` reads it from its own environment's
``EVIDENTLY_SECRET`` too). Without ``EVIDENTLY_URL`` nothing is sent.
Evidently's open-source UI has no login: its pages are readable by whoever reaches the port, and
only writing needs the secret; the demo and the cluster bind it to loopback.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from include.config import Settings
    from include.monitoring import Verdict
    from include.storage import Window

log = logging.getLogger(__name__)

URL_ENV = "EVIDENTLY_URL"
PUBLIC_URL_ENV = "EVIDENTLY_PUBLIC_URL"
SECRET_ENV = "EVIDENTLY_SECRET"
SECRET_HEADER = "evidently-secret"  # evidently.ui.service.security.token.SECRET_HEADER_NAME
TAG = "driftloop"
METRIC = "evidently:metric_v2:VerdictValue"  # VerdictValue's type, as panels and series filters name it
NAMESPACE = uuid.UUID("6f0c1b52-2f55-4c1e-9a51-7c2a4f0d3e10")  # driftloop's: project and panel ids


@functools.cache
def verdict_value_class():
    """``VerdictValue``: one figure of an interval's verdict (computed by driftloop on all rows) as
    an Evidently metric, so the dashboard draws it like Evidently's own. ``name`` says which figure;
    ``value`` is carried by the metric and left out of its labels (a label per value would make
    each interval a series of its own). Made on first use: Evidently takes seconds to import, and
    ``monitor``'s drift task only needs this module's links."""
    from evidently.core.metric_types import MetricConfig, SingleValueCalculation, SingleValueMetric

    class VerdictValue(SingleValueMetric):
        name: str
        value: float
        label: str = ""

    class VerdictValueCalculation(SingleValueCalculation[VerdictValue]):
        def calculate(self, context, current_data, reference_data):
            return self.result(self.metric.value)

        def display_name(self) -> str:
            return self.metric.label or self.metric.name

        def to_metric_config(self) -> MetricConfig:
            config = super().to_metric_config()
            params = {k: v for k, v in config.params.items() if k not in ("value", "label")}
            return MetricConfig(metric_id=config.metric_id, params=params)

    VerdictValue.__module__ = VerdictValueCalculation.__module__ = __name__
    return VerdictValue


def verdict_values(verdict: Verdict, settings: Settings) -> list:
    """The verdict's figures a team follows week by week, as metrics (those the verdict has:
    no live metric before labels come, no shadow without a previous champion)."""
    metric = settings.model.metric
    pred = verdict.get("prediction_drift") or {}
    business = verdict.get("business") or {}
    figures = [
        ("drift_share", verdict["drift_share"], "share of drifted features"),
        ("drift_share_threshold", settings.monitoring.drift_share, "drift when the share reaches"),
        ("drifted_columns", verdict["drifted_columns"], "drifted features"),
        ("live_metric", verdict.get("live_metric"), f"champion's live {metric}"),
        ("shadow_metric", verdict.get("shadow_metric"), f"shadow's live {metric}"),
        ("prediction_drift_score", pred.get("score"), f"prediction drift ({pred.get('method')})"),
        ("prediction_drift_threshold", pred.get("threshold"), "prediction drift threshold"),
        ("business", business.get("value"), f"business: {business.get('metric')}"),
        ("business_reference", business.get("reference"), "business: champion at training"),
        ("champion_version", verdict["model_version"], "champion version"),
        ("shadow_version", verdict.get("shadow_version"), "shadow version"),
        ("rows", verdict["rows"], "rows scored"),
        ("labelled_rows", verdict.get("labelled_rows"), "labelled rows"),
    ]
    metric = verdict_value_class()
    return [metric(name=n, value=float(v), label=label) for n, v, label in figures if v is not None]


def _figure(name: str, legend: str) -> dict:
    """A panel's line: one figure, in the form the service keeps it (every field of its PanelMetric)."""
    return {"legend": legend, "tags": [], "metadata": {}, "metric": METRIC, "metric_labels": {"name": name}, "view_params": {}}


def panels(settings: Settings) -> list[dict]:
    """The project's dashboard: counters for the latest interval, then the figures over time."""
    metric = settings.model.metric

    def panel(title: str, subtitle: str, values: list[dict], plot: str = "line", size: str = "half", **params) -> dict:
        return {
            "id": str(uuid.uuid5(NAMESPACE, f"{settings.name}/panel/{title}")),
            "title": title,
            "subtitle": subtitle,
            "size": size,
            "values": values,
            "plot_params": {"plot_type": plot, **params},
        }

    shown = [
        panel(
            "Champion version",
            "@champion when the interval was scored",
            [_figure("champion_version", "version")],
            "counter",
            aggregation="last",
        ),
        # not the drift share: Evidently's counter shows a zero as "no value"
        panel(
            f"Live {metric}", "latest interval, on its labelled rows", [_figure("live_metric", "champion")], "counter", aggregation="last"
        ),
        panel(
            "Drifted features over time",
            f"share of features whose test says drift; drift at {settings.monitoring.drift_share}",
            [_figure("drift_share", "share of drifted features"), _figure("drift_share_threshold", "drift threshold")],
            size="full",
        ),
        panel(
            f"Live {metric}: champion and shadow",
            "on the interval's labelled rows; the shadow is the previous champion",
            [_figure("live_metric", "champion"), _figure("shadow_metric", "shadow")],
        ),
        panel(
            "Prediction drift",
            "the champion's scores against its training window's out-of-time scores",
            [_figure("prediction_drift_score", "score"), _figure("prediction_drift_threshold", "threshold")],
        ),
        panel(
            "Champion version over time",
            "the version behind @champion for each interval",
            [_figure("champion_version", "champion"), _figure("shadow_version", "shadow")],
        ),
        panel("Rows", "scored and labelled rows per interval", [_figure("rows", "scored"), _figure("labelled_rows", "labelled")], "bar"),
    ]
    if settings.business is not None:
        shown.insert(
            4,
            panel(
                f"Business: {settings.business.metric}",
                "the interval's value and the champion's at training",
                [_figure("business", "interval"), _figure("business_reference", "champion at training")],
            ),
        )
    return shown


def merged_dashboard(settings: Settings, current: dict) -> dict:
    """The project's dashboard (one tab: Evidently's open-source UI has no other): driftloop's
    panels as ``panels`` draws them now, then the panels a team added in the UI, kept as they are.
    A panel is driftloop's when it draws the verdict's figures only; one driftloop no longer draws
    (the business metric switched off) goes."""
    ours = panels(settings)

    def driftloops(panel: dict) -> bool:
        values = panel.get("values") or []
        return bool(values) and all(v.get("metric") == METRIC for v in values)

    theirs = [{**p, "id": str(p["id"])} for p in current.get("panels", []) if not driftloops(p)]
    tab = {"id": str(uuid.uuid5(NAMESPACE, f"{settings.name}/tab")), "title": "Model health", "panels": [p["id"] for p in ours + theirs]}
    return _comparable({"tabs": [tab], "panels": ours + theirs})


def _comparable(dashboard: dict) -> dict:
    """A dashboard as the service returns it, in the form driftloop writes it (ids as strings), so
    an unchanged one is not written again."""
    tabs = [
        {"id": str(t["id"]), "title": t.get("title"), "panels": [str(x) for x in t.get("panels", [])]} for t in dashboard.get("tabs", [])
    ]
    return {"tabs": tabs, "panels": [{**p, "id": str(p["id"])} for p in dashboard.get("panels", [])]}


class Dashboard:
    """A client of the Evidently UI service's HTTP API (the part of it ``RemoteWorkspace`` leaves
    unimplemented: listing and deleting snapshots)."""

    def __init__(self, url: str, secret: str | None = None, public_url: str | None = None, timeout: float = 60) -> None:
        self.url = url.rstrip("/")
        self.public_url = (public_url or url).rstrip("/")
        self.secret = secret
        self.timeout = timeout

    @classmethod
    def from_env(cls) -> Dashboard | None:
        url = os.environ.get(URL_ENV)
        return cls(url, os.environ.get(SECRET_ENV), os.environ.get(PUBLIC_URL_ENV)) if url else None

    def _call(self, method: str, path: str, body: dict | str | None = None):
        data = (body if isinstance(body, str) else json.dumps(body)).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self.secret:
            request.add_header(SECRET_HEADER, self.secret)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                text = response.read()
        except urllib.error.HTTPError as err:
            raise DashboardError(f"Evidently UI {method} {path}: HTTP {err.code} {err.read()[:300]!r}") from err
        except (urllib.error.URLError, OSError) as err:
            raise DashboardError(f"Evidently UI at {self.url} is unreachable ({err}): is it running, and is {URL_ENV} right?") from err
        return json.loads(text) if text else None

    @staticmethod
    def project_id(name: str) -> str:
        return str(uuid.uuid5(NAMESPACE, f"{name}/project"))

    def project_url(self, name: str) -> str:
        return f"{self.public_url}/projects/{self.project_id(name)}"

    def snapshot_url(self, name: str, snapshot_id: str) -> str:
        return f"{self.project_url(name)}/reports/{snapshot_id}"

    def ensure_project(self, settings: Settings) -> str:
        """The model's project, created when missing, with driftloop's panels brought up to date
        (written only when they changed); panels a team added in the UI are kept (``merged_dashboard``)."""
        pid = self.project_id(settings.name)
        if not any(p["id"] == pid for p in self._call("GET", "/api/projects/")):
            description = f"driftloop model health of '{settings.name}': one snapshot per monitored interval"
            self._call("POST", "/api/v2/projects", {"id": pid, "name": settings.name, "description": description})
            log.info("Evidently project %s created for model %s", pid, settings.name)
        current = self._call("GET", f"/api/v2/dashboards/{pid}") or {}
        wanted = merged_dashboard(settings, current)
        if wanted != _comparable(current):
            self._call("POST", f"/api/v2/dashboards/{pid}", wanted)
        return pid

    def snapshots(self, name: str) -> list[dict]:
        """The project's snapshots (id, timestamp, metadata, tags), oldest first."""
        found = self._call("GET", f"/api/projects/{self.project_id(name)}/snapshots")
        return sorted(found, key=lambda s: s["timestamp"])

    def publish(self, settings: Settings, window: Window, snapshot) -> str:
        """Adds an interval's snapshot to the model's project, replacing the interval's earlier
        ones; returns the new snapshot's page."""
        pid = self.ensure_project(settings)
        stale = [s["id"] for s in self.snapshots(settings.name) if s.get("metadata", {}).get("interval") == window.key]
        added = self._call("POST", f"/api/v2/snapshots/{pid}", snapshot.dumps())["snapshot_id"]
        for sid in stale:  # after the new one is in: a failure in between leaves two, never none
            self._call("DELETE", f"/api/projects/{pid}/{sid}")
        if stale:
            log.info("interval %s: replaced %d earlier dashboard snapshot(s)", window.key, len(stale))
        return self.snapshot_url(settings.name, added)

    def series(self, name: str, figures: Iterable[str]) -> dict[str, list[float | None]]:
        """The values of ``VerdictValue`` figures over the project's snapshots (oldest first), as
        the dashboard's panels read them."""
        filters = [{"tags": [], "metadata": {}, "metric": METRIC, "metric_labels": {"name": f}} for f in figures]
        found = self._call("POST", f"/api/v2/snapshots/{self.project_id(name)}/data_series_batch", {"series_filter": filters})
        return {s["params"]["name"]: s["values"] for s in found["series"]}


class DashboardError(RuntimeError):
    """The Evidently UI service refused or could not be reached."""


def snapshot_metadata(verdict: Verdict, window: Window) -> dict[str, str]:
    """What a snapshot says of its interval (shown by the UI; ``interval`` finds it on a re-run)."""
    meta = {"interval": window.key, "start": verdict["start"], "end": verdict["end"], "champion": str(verdict["model_version"])}
    if verdict.get("mlflow_run_id"):
        meta["mlflow_run_id"] = verdict["mlflow_run_id"]
    return meta
