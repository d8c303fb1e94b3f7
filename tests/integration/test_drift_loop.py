"""The whole loop under dag.test(): stable weeks, a champion, then the world shifts.

Six weeks from Monday 2026-01-05 with drift from 2026-02-02 (week 4), the session ``stream``. The
champion trains on weeks 0-2; week 3 is monitored as stable, weeks 4 and 5 as drifted (the config
asks for two drifted intervals in a row). ``drift_watch`` then triggers a drift retrain; that run
is executed with the same conf; the challenger, trained on the new world, becomes champion.
Finally ``rollback`` moves the champion back and forth.
"""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import alerts_for, champion, task_states, week, xcom_value

pytestmark = pytest.mark.integration

DRIFT_END = "2026-02-16T00:00:00+00:00"  # end of week 5, the last drifted interval
DRIFT_RUN_ID = "drift__20260216T000000Z"


def _key(span) -> str:
    from include.storage import Window

    return Window.parse(*span).key


@pytest.fixture(scope="module")
def project(project_factory, stream):
    # the loop's rules, stated here rather than inherited from the demo config
    project = project_factory(training__window="28D", monitoring__consecutive=2, monitoring__drift_share=0.5, monitoring__cooldown="7D")
    project.land(stream)
    assert project.ingest(week(0)[0], week(6)[0]).state == "success"
    dr = project.retrain(week(3)[0], reason="initial", window="21D")
    assert dr.state == "success", task_states(dr)
    return project


@pytest.fixture(scope="module")
def verdicts(project):
    runs = {k: project.monitor(*week(k)) for k in (3, 4, 5)}
    for k, dr in runs.items():
        assert dr.state == "success", (k, task_states(dr))
    return {k: project.storage.read_json(project.storage.verdict_path(_window(week(k)))) for k in runs}


def _window(span):
    from include.storage import Window

    return Window.parse(*span)


def _history(project, mlflow_client) -> list[int]:
    return json.loads(mlflow_client.get_registered_model(project.name).tags["driftloop.champion_history"])


def test_stable_week_then_drifted_weeks(verdicts, project, mlflow_client):
    assert verdicts[3]["drift"] is False
    assert verdicts[4]["drift"] is True and verdicts[5]["drift"] is True
    for k in (4, 5):
        assert verdicts[k]["drift_share"] >= project.settings.monitoring.drift_share
        assert {"car_value", "debt_to_income_ratio"} <= set(verdicts[k]["drifted"])
        assert verdicts[k]["handled"] is None
    # the model trained before the shock ranks the new applicants worse than the old ones
    assert verdicts[5]["live_metric"] < verdicts[3]["live_metric"]
    # the shock moves the champion's scores and the repayment rate too
    for k in (4, 5):
        prediction, target = verdicts[k]["prediction_drift"], verdicts[k]["target_drift"]
        assert prediction["drifted"] is True and prediction["method"] == "ks" and prediction["score"] < 1e-6, prediction
        assert target["drifted"] is True, target
    exp = mlflow_client.get_experiment_by_name(f"{project.name}-monitoring")
    flags = {r.data.tags["driftloop.start"]: r.data.tags["driftloop.drift"] for r in mlflow_client.search_runs([exp.experiment_id])}
    assert flags == {
        "2026-01-26T00:00:00+00:00": "false",
        "2026-02-02T00:00:00+00:00": "true",
        "2026-02-09T00:00:00+00:00": "true",
    }


@pytest.fixture(scope="module")
def watched(project, verdicts):
    return project.run("drift_watch")


def _retrain_runs():
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        return {r.run_id: dict(r.conf or {}) for r in session.query(DagRun).filter(DagRun.dag_id == "retrain")}


def test_drift_watch_triggers_a_drift_retrain(watched, project):
    assert watched.state == "success"
    assert task_states(watched) == {"wait_for_drift": "success", "trigger_retrain": "success", "mark_handled": "success"}
    runs = _retrain_runs()
    assert DRIFT_RUN_ID in runs, sorted(runs)
    # the retrain learns from the drift's onset, the first drifted week (monitoring.drift_window: onset)
    assert runs[DRIFT_RUN_ID] == {"reason": "drift", "start": "2026-02-02T00:00:00+00:00", "end": DRIFT_END}


def test_drift_watch_sends_a_drift_alert(watched, alert_hook):
    sent = alerts_for(alert_hook, watched)
    assert [(a["kind"], a["task_id"]) for a in sent] == [("drift", "mark_handled")]
    assert DRIFT_RUN_ID in sent[0]["text"]


def test_drift_watch_marks_the_verdicts_handled(watched, project):
    for k in (4, 5):
        verdict = project.storage.read_json(project.storage.verdict_path(_window(week(k))))
        assert verdict["handled"] == DRIFT_RUN_ID
    assert project.storage.read_json(project.storage.verdict_path(_window(week(3))))["handled"] is None
    triggers = project.storage.read_json(project.storage.path("drift_watch", "triggers.json"))["triggers"]
    assert triggers == [
        {"start": "2026-02-02T00:00:00+00:00", "end": DRIFT_END, "verdicts": [_key(week(4)), _key(week(5))], "retrain_run_id": DRIFT_RUN_ID}
    ]


def test_handled_drift_is_not_answered_twice(watched, project, dagbag):
    """A re-monitored interval stays handled; with nothing pending the sensor keeps waiting and, at
    its timeout, the run ends skipped without triggering a second retrain.

    The DAG's own timeout comes from the config at parse time (15 minutes in the demo config), and
    dag.test() waits for it, so the sensor's timeout and poke interval are shortened on the task
    object for this run only.
    """
    # monitoring the last drifted week again keeps its verdict's handled mark
    assert project.monitor(*week(5)).state == "success"
    assert project.storage.read_json(project.storage.verdict_path(_window(week(5))))["handled"] == DRIFT_RUN_ID

    sensor = dagbag.dags["drift_watch"].get_task("wait_for_drift")
    saved = sensor.timeout, sensor.poke_interval
    sensor.timeout, sensor.poke_interval = 3, 1
    try:
        dr = project.run("drift_watch")
    finally:
        sensor.timeout, sensor.poke_interval = saved
    assert dr.state == "success"
    assert task_states(dr) == dict.fromkeys(["wait_for_drift", "trigger_retrain", "mark_handled"], "skipped")
    assert [r for r in _retrain_runs() if r.startswith("drift__")] == [DRIFT_RUN_ID]
    triggers = project.storage.read_json(project.storage.path("drift_watch", "triggers.json"))["triggers"]
    assert len(triggers) == 1


@pytest.fixture(scope="module")
def drift_retrain(project, watched):
    conf = _retrain_runs()[DRIFT_RUN_ID]
    return project.run("retrain", conf)


def test_drift_retrain_promotes_a_better_challenger(drift_retrain, project, mlflow_client):
    assert drift_retrain.state == "success", task_states(drift_retrain)
    assert champion(project, mlflow_client) == 2
    assert int(mlflow_client.get_model_version_by_alias(project.name, "challenger").version) == 2
    assert _history(project, mlflow_client) == [1, 2]

    version = mlflow_client.get_model_version(project.name, "2")
    assert version.tags["driftloop.reason"] == "drift"
    assert version.tags["driftloop.window_end"] == DRIFT_END
    assert version.tags["driftloop.window_start"] == "2026-02-02T00:00:00+00:00"  # the onset, not training.window (28D) back
    run = mlflow_client.get_run(version.run_id)
    assert run.data.tags["driftloop.reason"] == "drift"
    assert run.data.tags["driftloop.decision"] == "promote"
    assert run.data.tags["driftloop.compared_with"] == "1"
    metrics = run.data.metrics
    assert metrics["holdout_roc_auc"] > metrics["champion_holdout_roc_auc"]
    assert metrics["holdout_rows"] >= project.settings.promotion.min_rows


def test_rollback_to_the_previous_champion_and_forward_again(drift_retrain, project, mlflow_client):
    back = project.run("rollback")
    assert back.state == "success", task_states(back)
    assert champion(project, mlflow_client) == 1
    assert _history(project, mlflow_client) == [1]  # the rolled-back champion leaves the history

    # nothing earlier than version 1: the task fails at once (not retried) and nothing moves
    nothing = project.run("rollback")
    assert nothing.state == "failed"
    assert task_states(nothing) == {"move_champion": "failed"}
    assert champion(project, mlflow_client) == 1

    missing = project.run("rollback", {"version": 99})
    assert missing.state == "failed"
    assert champion(project, mlflow_client) == 1

    forward = project.run("rollback", {"version": 2})
    assert forward.state == "success", task_states(forward)
    assert xcom_value(forward, "move_champion", key="_link_MlflowLink").endswith(f"/#/models/{project.name}/versions/2")
    assert champion(project, mlflow_client) == 2
    assert _history(project, mlflow_client) == [1, 2]


def test_a_rerun_rollback_or_promote_does_not_move_the_champion_again(drift_retrain, project, mlflow_client):
    """Clearing a finished rollback (or promote) task re-runs it with the same Airflow run id: it
    must return what it did the first time, not step back once more."""
    from include.moves import promote, rollback

    assert champion(project, mlflow_client) == 2 and _history(project, mlflow_client) == [1, 2]
    first = rollback(project.settings, None, "manual__rerun-check")
    again = rollback(project.settings, None, "manual__rerun-check")
    assert first == again
    assert {k: first[k] for k in ("from", "to", "history")} == {"from": 2, "to": 1, "history": [1]}
    assert first["mlflow_url"].endswith(f"/#/models/{project.name}/versions/1")
    assert champion(project, mlflow_client) == 1
    # the old promote of version 2 re-run now: already recorded for its run, nothing moves
    old = promote(project.settings, {"version": 2}, {"better": True, "reason": "x"}, drift_retrain.run_id)
    assert old["champion"] == 2 and champion(project, mlflow_client) == 1
    rollback(project.settings, 2, "manual__forward-again")
    assert champion(project, mlflow_client) == 2
