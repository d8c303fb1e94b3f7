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
    run in which an interval failed, once dags/monitor.py has it) is skipped when none failed."""
    states = task_states(dr)
    assert states.pop("intervals_failed", "skipped") == "skipped"
    return states


def test_monitor_runs_every_task(monitored):
    for dr in monitored[:2]:
        assert dr.state == "success"
        assert interval_tasks(dr) == {"window": "success", "score": "success", "drift": "success", "guard": "success"}


def test_drift_task_links_to_its_monitoring_run(project, monitored, mlflow_client, mlflow_server):
    verdict = xcom_value(monitored[1], "drift", map_index=0)
    run = mlflow_client.get_run(verdict["mlflow_run_id"])
    page = f"{mlflow_server}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    assert verdict["mlflow_url"] == page
    assert xcom_value(monitored[1], "drift", key="_link_MlflowLink", map_index=0) == page


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
    assert "evidently/drift.html" in {a.path for a in mlflow_client.list_artifacts(run.info.run_id, "evidently")}
    html = mlflow_client.download_artifacts(run.info.run_id, "evidently/drift.html")
    text = open(html, encoding="utf-8").read()
    assert text.lstrip().lower().startswith("<!doctype html") and "car_value" in text


def test_without_a_champion_the_run_skips_scoring(project_factory, stream_5w, mlflow_client):
    fresh = project_factory("nochampion")
    fresh.land(rows_in(stream_5w, *week(0)))
    assert fresh.ingest(*week(0)).state == "success"
    dr = fresh.monitor(*week(0))
    assert dr.state == "success"
    assert interval_tasks(dr) == {"window": "success", "score": "skipped", "drift": "skipped", "guard": "skipped"}
    assert fresh.storage.verdicts() == []
    assert not fresh.storage.exists(fresh.storage.predictions_path(_window(week(0))))
    assert mlflow_client.get_experiment_by_name(f"{fresh.name}-monitoring") is None


def test_interval_without_curated_rows_fails(project):
    """Monitoring an interval nobody ingested is an error (not a silent empty verdict). The score
    task is retried, so this path is checked on the library function, not with dag.test()."""
    from include.monitoring import score_interval

    with pytest.raises(ValueError, match="no curated rows"):
        score_interval(project.settings, _window(week(7)))
