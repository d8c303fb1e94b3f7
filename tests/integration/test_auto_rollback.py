"""Shadow scoring and the automatic rollback under dag.test().

Seven stable weeks from Monday 2026-01-05. Version 1 learns weeks 0-2. Version 2 learns weeks 3-4,
whose labels were shuffled (a broken label feed): it is registered, rejected by the comparison,
then made champion by hand (a rollback to version 2, the mistake the guard must catch). Monitoring
weeks 5 and 6 then shows v2 trailing its shadow v1 on the live metric. With
`monitoring.rollback: manual` the guard only reports it; switched to `auto`, the next monitor run
moves `@champion` back to v1.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import write_config
from tests.integration.conftest import alerts_for, champion, rows_in, stable_weeks, task_states, week, xcom_value

pytestmark = pytest.mark.integration

RULES = {
    "training__window": "21D",
    "monitoring__rollback_intervals": 2,
    "monitoring__rollback_margin": 0.05,
    # version 2 must lose the comparison, so only a human mistake makes it champion
    "promotion__min_improvement": 0.5,
}


@pytest.fixture(scope="module")
def stream_7w():
    frame = stable_weeks(7)
    noisy = rows_in(frame, week(3)[0], week(5)[0]).index
    frame.loc[noisy, "repaid"] = np.random.default_rng(0).permutation(frame.loc[noisy, "repaid"].to_numpy())
    return frame


@pytest.fixture(scope="module")
def project(project_factory, stream_7w, mlflow_client):
    project = project_factory(**RULES, monitoring__rollback="manual")
    project.land(stream_7w)
    assert project.ingest(week(0)[0], week(7)[0]).state == "success"
    first = project.retrain(week(3)[0], reason="initial", window="21D")
    assert first.state == "success", task_states(first)
    second = project.retrain(week(5)[0], reason="manual", window="14D")
    assert second.state == "success", task_states(second)
    assert xcom_value(second, "promote")["promoted"] is False
    assert project.run("rollback", {"version": 2}).state == "success"
    assert champion(project, mlflow_client) == 2
    return project


@pytest.fixture(scope="module")
def manual(project):
    """Weeks 5 and 6 monitored with monitoring.rollback: manual."""
    return [project.monitor(*week(k)) for k in (5, 6)]


@pytest.fixture(scope="module")
def auto(project, manual):
    """Week 6 monitored again after the config switched to monitoring.rollback: auto."""
    write_config(project.folder, project.name, **RULES, monitoring__rollback="auto")
    return project.monitor(*week(6))


def test_the_previous_champion_scores_as_a_shadow(project, manual, mlflow_client):
    from include.storage import Window

    for k, dr in zip((5, 6), manual, strict=True):
        assert dr.state == "success", task_states(dr)
        predictions = project.storage.read_parquet(project.storage.predictions_path(Window.parse(*week(k))))
        assert set(predictions["model_version"]) == {2} and set(predictions["shadow_version"]) == {1}
        assert predictions["shadow_prediction"].between(0, 1).all()
        verdict = xcom_value(dr, "drift", map_index=0)
        assert verdict["model_version"] == 2 and verdict["shadow_version"] == 1
        # the broken-label model is near chance; the shadow keeps its stable-period quality
        assert verdict["live_metric"] < 0.6 < 0.7 < verdict["shadow_metric"]
        run = mlflow_client.get_run(verdict["mlflow_run_id"])
        assert run.data.tags["driftloop.shadow_version"] == "1"
        assert run.data.metrics["shadow_roc_auc"] == pytest.approx(verdict["shadow_metric"])


def test_manual_mode_reports_the_degradation_and_moves_nothing(project, manual, mlflow_client):
    from include.storage import Window

    after_one, after_two = (xcom_value(dr, "guard") for dr in manual)
    assert after_one["degraded"] is False  # one interval is not yet a streak of two
    assert after_two["degraded"] is True and after_two["rolled_back"] is False
    assert "champion v2 trails shadow v1" in after_two["reason"]
    assert after_two["evidence"] == [Window.parse(*week(k)).key for k in (5, 6)]  # what keys its alert
    assert champion(project, mlflow_client) == 2


def test_manual_mode_alerts_once_for_its_evidence(project, manual, alert_hook):
    assert alerts_for(alert_hook, manual[0]) == []
    sent = alerts_for(alert_hook, manual[1])
    assert [(a["kind"], a["task_id"]) for a in sent] == [("degraded", "guard")]
    assert "v2 trails its shadow (monitoring.rollback is manual)" in sent[0]["title"]


def test_auto_mode_rolls_back_to_the_shadow(project, auto, mlflow_client, mlflow_server):
    assert auto.state == "success", task_states(auto)
    guarded = xcom_value(auto, "guard")
    assert guarded["rolled_back"] is True and guarded["from"] == 2 and guarded["champion"] == 1
    assert guarded["mlflow_url"] == f"{mlflow_server}/#/models/{project.name}/versions/1"
    assert xcom_value(auto, "guard", key="_link_MlflowLink") == guarded["mlflow_url"]
    assert champion(project, mlflow_client) == 1
    assert project.storage.read_json(project.storage.path("verdicts", "20260209T000000Z__20260216T000000Z.json"))["demoted"] == auto.run_id
    demoted = mlflow_client.get_model_version(project.name, "2").tags["driftloop.demoted"]
    assert "trails shadow v1" in demoted and "0.05" in demoted


def test_an_automatic_rollback_sends_an_alert(project, auto, alert_hook):
    sent = alerts_for(alert_hook, auto)
    assert [(a["kind"], a["title"]) for a in sent] == [("rollback", f"{project.name}: champion rolled back from v2 to v1")]


def test_a_retried_guard_returns_its_recorded_rollback(project, auto, mlflow_client):
    """The guard's task retried with the same Airflow run id re-applies its recorded plan (v1
    champion, v2 demoted, verdicts marked) and returns the same result."""
    from include.moves import guard_champion

    first = xcom_value(auto, "guard")
    again = guard_champion(project.settings, auto.run_id)
    assert again == first and champion(project, mlflow_client) == 1


def test_marked_evidence_does_not_demote_again(project, auto, mlflow_client):
    """v2 made champion again by hand: its old, marked verdicts are no reason to roll back."""
    from include.moves import guard_champion

    assert project.run("rollback", {"version": 2}).state == "success"
    try:
        result = guard_champion(project.settings, "manual__after-re-promotion")
        assert result["degraded"] is False and champion(project, mlflow_client) == 2
    finally:
        assert project.run("rollback", {"version": 1}).state == "success"


def test_a_rollback_is_not_repeated(project, auto, mlflow_client):
    """Monitoring the same week again. The hand moves above left the history [1, 2, 1], so v2 is
    v1's shadow now: it scores, trails, and nothing moves."""
    again = project.monitor(*week(6))
    assert again.state == "success"
    assert xcom_value(again, "guard")["rolled_back"] is False
    assert champion(project, mlflow_client) == 1
    verdict = xcom_value(again, "drift", map_index=0)
    assert verdict["shadow_version"] == 2 and verdict["shadow_metric"] < verdict["live_metric"]


def test_an_old_guard_run_cleared_later_does_not_undo_a_newer_champion(project, auto, mlflow_client):
    """The recorded rollback of an old monitor run is applied only while @champion is where it
    found it: cleared after another move, the guard returns its record and moves nothing."""
    from include.moves import guard_champion

    assert project.run("rollback", {"version": 2}).state == "success"
    try:
        again = guard_champion(project.settings, auto.run_id)
        assert again["rolled_back"] is True and again["champion"] == 1  # what that run did, then
        assert champion(project, mlflow_client) == 2
    finally:
        assert project.run("rollback", {"version": 1}).state == "success"
