"""monitor under dag.test(): scores, verdict and monitoring run of an interval, and re-runs that
replace rather than add; without a champion the run skips its work instead of failing.

(In dag.test() the asset-triggered monitor does not follow ingest by itself: it is run here with
an explicit ``{"start", "end"}`` conf, as the UI form or a script would.)
"""

from __future__ import annotations

import pytest

from tests.integration.conftest import rows_in, stable_weeks, task_states, week, xcom_value

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stream_5w():
    return stable_weeks(5)


@pytest.fixture(scope="module")
def project(project_factory, stream_5w):
    """Five stable weeks curated; a champion trained on weeks 0-3."""
    project = project_factory()
    project.land(stream_5w)
    assert project.ingest(week(0)[0], week(5)[0]).state == "success"
    dr = project.retrain(week(4)[0], reason="initial", window="28D")
    assert dr.state == "success", task_states(dr)
    return project


@pytest.fixture(scope="module")
def monitored(project):
    """Week 4 monitored twice (the second run must replace the first one's records)."""
    first = project.monitor(*week(4))
    predictions = project.storage.read_parquet(project.storage.predictions_path(_window(week(4))))
    second = project.monitor(*week(4))
    return first, second, predictions


def _window(span):
    from include.storage import Window

    return Window.parse(*span)


def interval_tasks(dr) -> dict:
    """The states of the per-interval tasks and guard; ``intervals_failed`` (the leaf that fails a
    run in which an interval failed) is skipped when none failed; ``catch_up`` is skipped when no
    curated event came after the run's trigger time (none does under dag.test)."""
    states = task_states(dr)
    assert states.pop("intervals_failed", "skipped") == "skipped"
    assert states.pop("catch_up") == "skipped"
    return states


def test_monitor_runs_every_task(monitored):
    for dr in monitored[:2]:
        assert dr.state == "success"
        assert interval_tasks(dr) == {
            "window": "success",
            "score": "success",
            "drift": "success",
            "report": "success",
            "guard": "success",
            "rollout": "success",
        }


def test_drift_task_links_to_its_monitoring_run(project, monitored, mlflow_client, mlflow_server):
    verdict = xcom_value(monitored[1], "drift", map_index=0)
    run = mlflow_client.get_run(verdict["mlflow_run_id"])
    page = f"{mlflow_server}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    assert verdict["mlflow_url"] == page
    assert xcom_value(monitored[1], "drift", key="_link_MlflowLink", map_index=0) == page
    # and to the interval's Evidently report, an artifact of that run (drawn by the report task)
    assert verdict["report_url"] == f"{page}/artifacts/evidently/drift.html"
    assert xcom_value(monitored[1], "drift", key="_link_ReportLink", map_index=0) == verdict["report_url"]
    assert "evidently/drift.html" in {a.path for a in mlflow_client.list_artifacts(run.info.run_id, "evidently")}


def test_interval_joins_the_model_health_dashboard_once(project, monitored, evidently_server, mlflow_client):
    """The interval monitored twice is one snapshot of the model's project in the Evidently UI,
    timestamped with the interval's start, whose figures are the verdict's (computed on all rows);
    the drift task links to the project and the report task to the snapshot."""
    from include.dashboard import Dashboard

    board = Dashboard.from_env()
    verdict = project.storage.read_json(project.storage.verdict_path(_window(week(4))))
    snapshots = board.snapshots(project.name)
    assert len(snapshots) == 1, "a re-run of the same interval added a second dashboard snapshot"
    assert snapshots[0]["timestamp"].startswith("2026-02-02T00:00:00")
    assert snapshots[0]["metadata"]["interval"] == _window(week(4)).key
    assert snapshots[0]["metadata"]["mlflow_run_id"] == verdict["mlflow_run_id"]
    series = board.series(
        project.name, ["drift_share", "live_metric", "champion_version", "rows", "prediction_drift_score", "shadow_metric"]
    )
    assert series["drift_share"] == [pytest.approx(verdict["drift_share"])]
    assert series["live_metric"] == [pytest.approx(verdict["live_metric"])]
    assert series["prediction_drift_score"] == [pytest.approx(verdict["prediction_drift"]["score"])]
    assert series["champion_version"] == [1.0] and series["rows"] == [float(verdict["rows"])]
    assert "shadow_metric" not in series  # no previous champion: no shadow figure, not a zero
    project_page = f"{evidently_server}/projects/{Dashboard.project_id(project.name)}"
    assert xcom_value(monitored[1], "drift", map_index=0)["dashboard_url"] == project_page
    assert xcom_value(monitored[1], "drift", key="_link_DashboardLink", map_index=0) == project_page
    snapshot_page = f"{project_page}/reports/{snapshots[0]['id']}"
    assert xcom_value(monitored[1], "report", map_index=0)["snapshot_url"] == snapshot_page
    # and the interval's MLflow run points at it
    assert mlflow_client.get_run(verdict["mlflow_run_id"]).data.tags["driftloop.dashboard"] == snapshot_page
    # the panels the team reviews, each drawing figures the snapshots carry
    dashboard = board._call("GET", f"/api/v2/dashboards/{Dashboard.project_id(project.name)}")
    titles = [p["title"] for p in dashboard["panels"]]
    assert titles[:3] == ["Champion version", "Live roc_auc", "Drifted features over time"]
    assert "Live roc_auc: champion and shadow" in titles and "Prediction drift" in titles
    assert dashboard["tabs"][0]["panels"] == [p["id"] for p in dashboard["panels"]]


def test_a_dashboard_that_is_down_fails_the_report_task_and_loses_nothing(project, monitored, monkeypatch, evidently_server):
    """The Evidently UI unreachable: ``report`` (what monitor's report task runs) fails with an
    error that names the setting to check, after the HTML report is written; the verdict is as it
    was. Sent again once the service is back (a retry), the interval is still one snapshot."""
    import json

    from include.dashboard import Dashboard, DashboardError
    from include.monitoring import draw_report

    window = _window(week(4))
    verdict_path = project.storage.verdict_path(window)
    verdict = project.storage.read_json(verdict_path)
    html = project.folder / "store" / "reports" / window.key / "drift.html"
    html.unlink()
    monkeypatch.setenv("EVIDENTLY_URL", "http://127.0.0.1:9")  # the discard port: nothing answers
    with pytest.raises(DashboardError, match="EVIDENTLY_URL"):
        draw_report(project.settings, window)
    assert html.exists() and project.storage.read_json(verdict_path) == verdict
    monkeypatch.setenv("EVIDENTLY_URL", evidently_server)
    board = Dashboard.from_env()
    pid = Dashboard.project_id(project.name)
    result = draw_report(project.settings, window)
    snapshots = board.snapshots(project.name)
    assert len(snapshots) == 1 and result["snapshot_url"].endswith(snapshots[0]["id"])
    pictured = json.dumps(board._call("GET", f"/api/projects/{pid}/{snapshots[0]['id']}/data"))  # what the UI's report page loads
    before = board.series(project.name, ["drift_share", "live_metric"])
    # a panel a team added in the UI survives driftloop's redraw of its own
    current = board._call("GET", f"/api/v2/dashboards/{pid}")
    team_panel = {"id": "11111111-1111-1111-1111-111111111111", "title": "Read me", "subtitle": None, "size": "full", "values": []}
    team_panel["plot_params"] = {"plot_type": "text"}
    tab = {**current["tabs"][0], "panels": [*current["tabs"][0]["panels"], team_panel["id"]]}
    board._call("POST", f"/api/v2/dashboards/{pid}", {"tabs": [tab], "panels": [*current["panels"], team_panel]})
    # monitoring.dashboard: figures (daily intervals): the same figures, without the pictures
    figures = project.settings.model_copy(update={"monitoring": project.settings.monitoring.model_copy(update={"dashboard": "figures"})})
    draw_report(figures, window)
    snapshots = board.snapshots(project.name)
    bare = json.dumps(board._call("GET", f"/api/projects/{pid}/{snapshots[0]['id']}/data"))
    assert len(snapshots) == 1 and board.series(project.name, ["drift_share", "live_metric"]) == before
    assert len(bare) * 10 < len(pictured), (len(bare), len(pictured))
    assert html.stat().st_size > len(pictured) / 2  # the HTML report keeps its pictures
    kept = board._call("GET", f"/api/v2/dashboards/{pid}")
    assert [p["title"] for p in kept["panels"]][-1] == "Read me" and kept["tabs"][0]["panels"][-1] == team_panel["id"]


def test_predictions_one_row_per_id_after_rerun(project, monitored, stream_5w):
    expected = rows_in(stream_5w, *week(4))
    first = monitored[2]
    again = project.storage.read_parquet(project.storage.predictions_path(_window(week(4))))
    for predictions in (first, again):
        assert len(predictions) == len(expected) > 0
        assert predictions["id"].is_unique
        assert set(predictions["id"]) == set(expected["id"])
        assert predictions["prediction"].between(0, 1).all()
        assert (predictions["model_version"] == 1).all()
    assert list(project.folder.glob("store/predictions/*.parquet")) == [
        project.folder / "store" / "predictions" / f"{_window(week(4)).key}.parquet"
    ]


def test_verdict_is_stored(project, monitored):
    verdict = project.storage.read_json(project.storage.verdict_path(_window(week(4))))
    assert verdict["start"] == "2026-02-02T00:00:00+00:00"
    assert verdict["end"] == "2026-02-09T00:00:00+00:00"
    assert verdict["model_version"] == 1
    assert verdict["drift"] is False  # the stream is stable: same world as the training weeks
    assert 0 <= verdict["drift_share"] < project.settings.monitoring.drift_share
    assert set(verdict["columns"]) == set(project.settings.data.features)
    assert {c["status"] for c in verdict["columns"].values()} == {"ok"} and verdict["column_issues"] == {}
    assert verdict["live_metric"] is not None and 0.5 < verdict["live_metric"] <= 1
    assert verdict["reference_window"] == {"start": "2026-01-05T00:00:00+00:00", "end": "2026-02-02T00:00:00+00:00"}
    assert verdict["handled"] is None
    # the champion's scores and the interval's labels, against its out-of-time scores and targets
    prediction, target = verdict["prediction_drift"], verdict["target_drift"]
    # against the last fold's out-of-time scores (fewer than 1,000: Evidently's choice, K-S, whose
    # p-value decides; a stable week is not drifted by design only on average, so the rule is checked)
    assert (prediction["status"], prediction["method"], prediction["threshold"]) == ("ok", "ks", 0.05), prediction
    assert 0 < prediction["score"] <= 1 and prediction["drifted"] is (prediction["score"] <= 0.05)
    assert (target["status"], target["method"], target["drifted"]) == ("ok", "jensenshannon", False), target
    assert (project.folder / "store" / "reports" / _window(week(4)).key / "drift.html").exists()
    assert len(project.storage.verdicts()) == 1


def test_one_monitoring_run_per_interval(project, monitored, mlflow_client):
    exp = mlflow_client.get_experiment_by_name(f"{project.name}-monitoring")
    assert exp is not None
    runs = mlflow_client.search_runs([exp.experiment_id])
    assert len(runs) == 1, "a re-run of the same interval made a second monitoring run"
    run = runs[0]
    assert run.data.tags["driftloop.start"] == "2026-02-02T00:00:00+00:00"
    assert run.data.tags["driftloop.end"] == "2026-02-09T00:00:00+00:00"
    assert run.data.tags["driftloop.drift"] == "false"
    assert run.data.tags["driftloop.model_version"] == "1"
    assert "drift_share" in run.data.metrics
    assert 0.5 < run.data.metrics["roc_auc"] <= 1
    verdict = project.storage.read_json(project.storage.verdict_path(_window(week(4))))
    assert verdict["mlflow_run_id"] == run.info.run_id
    assert run.data.metrics["roc_auc"] == pytest.approx(verdict["live_metric"])
    flags = {True: "true", False: "false"}
    assert run.data.tags["driftloop.prediction_drift"] == flags[verdict["prediction_drift"]["drifted"]]
    assert run.data.tags["driftloop.target_drift"] == "false"
    assert run.data.metrics["prediction_drift_score"] == pytest.approx(verdict["prediction_drift"]["score"])
    assert "evidently/drift.html" in {a.path for a in mlflow_client.list_artifacts(run.info.run_id, "evidently")}
    # readable in the runs list: its name says the interval, its description the verdict
    assert run.info.run_name == "monitor 2026-02-02 .. 2026-02-09"
    note = run.data.tags["mlflow.note.content"]
    assert note.startswith("**No drift** in [2026-02-02T00:00:00+00:00, 2026-02-09T00:00:00+00:00) under champion v1")
    assert f"Live roc_auc on {verdict['labelled_rows']} labelled rows: {verdict['live_metric']:.4f}." in note
    # the drift timeline, every interval so far, beside the report
    assert "charts/drift_over_time.png" in {a.path for a in mlflow_client.list_artifacts(run.info.run_id, "charts")}
    html = mlflow_client.download_artifacts(run.info.run_id, "evidently/drift.html")
    text = open(html, encoding="utf-8").read()
    assert text.lstrip().lower().startswith("<!doctype html") and "car_value" in text


def test_without_a_champion_the_run_skips_scoring(project_factory, stream_5w, mlflow_client):
    fresh = project_factory("nochampion")
    fresh.land(rows_in(stream_5w, *week(0)))
    assert fresh.ingest(*week(0)).state == "success"
    dr = fresh.monitor(*week(0))
    assert dr.state == "success"
    assert interval_tasks(dr) == {
        "window": "success",
        "score": "skipped",
        "drift": "skipped",
        "report": "skipped",
        "guard": "skipped",
        "rollout": "skipped",
    }
    assert fresh.storage.verdicts() == []
    assert not fresh.storage.exists(fresh.storage.predictions_path(_window(week(0))))
    assert mlflow_client.get_experiment_by_name(f"{fresh.name}-monitoring") is None


def test_interval_without_curated_rows_fails(project):
    """Monitoring an interval nobody ingested is a data error (not a silent empty verdict, and not
    retried: see the two-interval run below for the task)."""
    from include.monitoring import score_interval

    with pytest.raises(ValueError, match="no curated rows"):
        score_interval(project.settings, _window(week(7)))


def test_one_failed_interval_does_not_stop_guard_for_the_others(project, monkeypatch):
    """A run over two intervals (as when two ingest runs queued events for one monitor run), one of
    which nobody ingested: its score fails (data, no retry), the other interval is scored and
    checked (drift expands over the scored intervals only), guard still runs on the verdict there is, and the run ends failed.

    dag.test() cannot hand a run triggering asset events (the scheduler attaches them when it
    creates an asset-triggered run), so the two intervals the events would give are supplied by
    patching ``interval_windows``; its reading of the events is tested in tests/unit/test_windows.py.
    """
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    from include import windows

    monkeypatch.setattr(windows, "interval_windows", lambda params, extras=(): [_window(week(4)), _window(week(7))])
    dr = project.run("monitor", {})
    with create_session() as session:
        tis = session.query(TaskInstance).filter(TaskInstance.dag_id == "monitor", TaskInstance.run_id == dr.run_id).all()
        states = {(ti.task_id, ti.map_index): str(getattr(ti.state, "value", ti.state)) for ti in tis}
    assert states == {
        ("window", -1): "success",
        ("score", 0): "success",
        ("score", 1): "failed",
        ("drift", 0): "success",  # expanded over the intervals that were scored
        ("report", 0): "success",
        ("guard", -1): "success",
        ("rollout", -1): "success",
        ("intervals_failed", -1): "failed",
        ("catch_up", -1): "skipped",  # a teardown: the failed leaf still fails the run
    }
    assert dr.state == "failed"
    assert xcom_value(dr, "guard")["champion"] == 1
