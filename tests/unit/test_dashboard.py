"""The model-health dashboard's pieces that need no server: the verdict's figures as Evidently
metrics (labelled by figure, not by value), the panels, and the snapshot of an interval whose
features could not be compared. The service itself is exercised by tests/integration/test_monitor.py
and by the browser test on the demo."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from include import dashboard, drift

rng = np.random.default_rng(3)

SETTINGS = SimpleNamespace(
    name="loans", model=SimpleNamespace(metric="roc_auc"), monitoring=SimpleNamespace(drift_share=0.5), business=None
)
VERDICT = {
    "start": "2026-01-05T00:00:00+00:00",
    "end": "2026-01-12T00:00:00+00:00",
    "drift_share": 0.25,
    "drifted_columns": 1,
    "live_metric": 0.71,
    "shadow_metric": None,
    "model_version": 2,
    "shadow_version": None,
    "rows": 400,
    "labelled_rows": 0,
    "prediction_drift": {"score": 0.3, "threshold": 0.05, "method": "ks"},
    "business": None,
    "mlflow_run_id": "r1",
}


def _results(snapshot) -> dict[str, dict]:
    """The VerdictValue results of a snapshot as the UI service stores them, by figure."""
    model = json.loads(snapshot.dumps())
    found = {}
    for result in model["metric_results"].values():
        params = result["metric_value_location"]["metric"]["params"]
        if params["type"] == "evidently:metric_v2:VerdictValue":
            found[params["name"]] = {"value": result["value"], "params": params, "display": result["display_name"]}
    return found


def test_the_verdicts_figures_are_metrics_labelled_by_figure_not_by_value():
    values = dashboard.verdict_values(VERDICT, SETTINGS)
    names = [v.name for v in values]
    # figures the verdict has not (no shadow, no business) are left out, not drawn as zeros
    assert "shadow_metric" not in names and "business" not in names and "shadow_version" not in names
    assert names[:3] == ["drift_share", "drift_share_threshold", "drifted_columns"]
    data = SimpleNamespace(numeric=["a"], categorical=[], features=["a"])
    frame = pd.DataFrame({"a": rng.normal(0, 1, 300)})
    columns = {"a": {"method": "ks", "threshold": 0.05, "status": "ok", "drifted": False, "note": ""}}
    run = drift.drift_snapshot(frame, frame, data, columns, 0.5, 100, metrics=values, metadata={"interval": "k"}, tags=["driftloop"])
    found = _results(run.snapshot)
    assert found["drift_share"]["value"] == 0.25 and found["live_metric"]["value"] == 0.71 and found["champion_version"]["value"] == 2
    # the value (and the display label) stay out of the labels: one series per figure across intervals
    assert set(found["live_metric"]["params"]) == {"type", "name"}
    assert found["live_metric"]["display"] == "champion's live roc_auc"
    assert "a random sample of 100 of 300 current rows" in run.html()


def test_an_interval_with_no_comparable_feature_still_has_its_figures():
    data = SimpleNamespace(numeric=["a"], categorical=[], features=["a"])
    columns = {"a": {"method": None, "threshold": None, "status": "all_null", "drifted": None, "note": "all null"}}
    frame = pd.DataFrame({"a": [np.nan] * 10})
    run = drift.drift_snapshot(frame, frame, data, columns, 0.5, 100, metrics=dashboard.verdict_values(VERDICT, SETTINGS))
    assert _results(run.snapshot)["drift_share"]["value"] == 0.25
    assert "No feature column could be compared" in run.html()
    assert drift.drift_snapshot(frame, frame, data, columns, 0.5, 100).snapshot is None


def test_panels_have_stable_ids_and_a_business_panel_only_when_configured():
    first, again = dashboard.panels(SETTINGS), dashboard.panels(SETTINGS)
    assert [p["id"] for p in first] == [p["id"] for p in again]  # rewritten with each snapshot: same panels
    assert not any(p["title"].startswith("Business") for p in first)
    with_business = SimpleNamespace(**{**vars(SETTINGS), "business": SimpleNamespace(metric="expected_value")})
    titles = [p["title"] for p in dashboard.panels(with_business)]
    assert "Business: expected_value" in titles
    figures = {v["metric_labels"]["name"] for p in dashboard.panels(with_business) for v in p["values"]}
    produced = {
        v.name
        for v in dashboard.verdict_values(
            {
                **VERDICT,
                "shadow_metric": 0.7,
                "shadow_version": 1,
                "business": {"value": 1.0, "reference": 1.1, "metric": "expected_value"},
            },
            with_business,
        )
    }
    assert figures <= produced  # every panel draws a figure a snapshot carries


def test_the_project_is_found_by_the_models_name():
    assert dashboard.Dashboard.project_id("loans") == dashboard.Dashboard.project_id("loans") != dashboard.Dashboard.project_id("other")
    board = dashboard.Dashboard("http://workers-see:8000/", public_url="http://127.0.0.1:8800")
    assert board.project_url("loans") == f"http://127.0.0.1:8800/projects/{dashboard.Dashboard.project_id('loans')}"


def test_an_unreachable_service_says_which_setting_to_check():
    board = dashboard.Dashboard("http://127.0.0.1:9")  # discard port: nothing listens
    with pytest.raises(dashboard.DashboardError, match="EVIDENTLY_URL"):
        board.snapshots("loans")


def test_the_teams_own_panels_survive_driftloops_redraw():
    """driftloop redraws its panels with each snapshot; a panel a team added in the UI stays; a
    panel driftloop no longer draws (business switched off) goes."""
    with_business = SimpleNamespace(**{**vars(SETTINGS), "business": SimpleNamespace(metric="expected_value")})
    before = dashboard.merged_dashboard(with_business, {})
    metric = {"legend": None, "tags": [], "metadata": {}, "metric": "evidently:metric_v2:DriftedColumnsCount", "metric_labels": {}}
    team_panel = {"id": "11111111-1111-1111-1111-111111111111", "title": "Evidently's own count", "values": [metric], "plot_params": {}}
    note = {"id": "33333333-3333-3333-3333-333333333333", "title": "Read me", "values": [], "plot_params": {"plot_type": "text"}}
    current = {"tabs": [{**before["tabs"][0], "panels": [*before["tabs"][0]["panels"], team_panel["id"], note["id"]]}]}
    current["panels"] = [*before["panels"], team_panel, note]
    after = dashboard.merged_dashboard(SETTINGS, current)
    titles = [p["title"] for p in after["panels"]]
    assert titles == [p["title"] for p in dashboard.panels(SETTINGS)] + ["Evidently's own count", "Read me"]
    assert not any(t.startswith("Business") for t in titles)
    assert len(after["tabs"]) == 1 and after["tabs"][0]["panels"] == [p["id"] for p in after["panels"]]
    # unchanged, it is not written again: the service's answer compares equal to what would be written
    assert dashboard.merged_dashboard(SETTINGS, after) == after
