"""Staged rollout under the real ``retrain`` and ``monitor`` DAGs.

v1 learns four stable weeks; the world then drifts, and v2 (trained on the two drifted weeks) beats
v1 offline, so it goes under rollout (``@candidate``) instead of replacing v1 at once. The week
after its window decides: if the world stays drifted, v2 is better live and is promoted; if it
returns to the old one, v1 is better and v2 is retired. Both strategies, both outcomes.
"""

from __future__ import annotations

import pandas as pd
import pytest

from include.storage import Window
from tests.integration.conftest import ROWS_PER_DAY, START, alerts_for, champion, task_states, week, xcom_value

pytestmark = pytest.mark.integration


def _stream(world: str) -> pd.DataFrame:
    from include.simulator import StreamSpec, simulate

    drifted = simulate(StreamSpec(start=START, days=49, drift_start=week(4)[0], rows_per_day=ROWS_PER_DAY))
    if world == "drifted":
        return drifted
    stable = simulate(StreamSpec(start=START, days=49, rows_per_day=ROWS_PER_DAY))
    cut = pd.Timestamp(week(6)[0], tz="UTC")
    return pd.concat([drifted[drifted.timestamp < cut], stable[stable.timestamp >= cut]], ignore_index=True)


@pytest.mark.parametrize("strategy", ["shadow", "canary"])
@pytest.mark.parametrize("world", ["drifted", "stable"])
def test_a_better_challenger_goes_live_in_stages_and_the_live_rows_decide(project_factory, mlflow_client, alert_hook, strategy, world):
    project = project_factory(f"{strategy}_{world}", training__folds=3, promotion__strategy=strategy, promotion__canary_share=0.3)
    project.land(_stream(world))
    assert project.ingest(week(0)[0], week(7)[0]).state == "success"
    assert project.retrain(week(4)[0], reason="initial").state == "success"
    assert champion(project, mlflow_client) == 1  # no champion yet: promoted at once, whatever the strategy

    staged = project.retrain(week(6)[0], reason="manual", window="14D")
    assert staged.state == "success", task_states(staged)
    started = xcom_value(staged, "promote")
    assert started["promoted"] is False and started["rollout"] == strategy and started["champion"] == 1
    assert champion(project, mlflow_client) == 1 and mlflow_client.get_model_version_by_alias(project.name, "candidate").version == "2"
    v2 = mlflow_client.get_model_version(project.name, "2")
    assert v2.tags["driftloop.decision"] == strategy and v2.description.split("\n")[2].startswith("**Under staged rollout** (`@candidate`)")
    assert alerts_for(alert_hook, staged) == []

    run = project.monitor(*week(6))
    assert run.state == "success", task_states(run)
    predictions = project.storage.read_parquet(project.storage.predictions_path(Window(*week(6))))
    assert set(predictions.candidate_version) == {2} and predictions.candidate_prediction.notna().all()
    canary = predictions.role == "canary"
    if strategy == "canary":
        assert 0.25 < canary.mean() < 0.35
        assert (predictions.prediction[canary] == predictions.candidate_prediction[canary]).all()
        assert set(predictions.model_version[canary]) == {2} and set(predictions.model_version[~canary]) == {1}
    else:
        assert not canary.any() and (predictions.prediction == predictions.champion_prediction).all()
    verdict = project.storage.read_json(project.storage.verdict_path(Window(*week(6))))
    live = verdict["rollout"]
    assert live["version"] == 2 and live["strategy"] == strategy and live["labelled_rows"] >= 50
    better = live["candidate_metric"] > live["champion_metric"]
    assert better is (world == "drifted")

    decided = xcom_value(run, "rollout")
    sent = alerts_for(alert_hook, run)
    if world == "drifted":
        assert decided["promoted"] is True and champion(project, mlflow_client) == 2
        assert [a["kind"] for a in sent] == ["promotion"]
        card = mlflow_client.get_model_version(project.name, "2").description
        assert card.split("\n")[2].startswith(f"**Champion.** Promoted, replacing v1: {strategy} v2 is")
        assert mlflow_client.get_model_version(project.name, "2").tags["driftloop.rollout"].startswith("promoted: ")
    else:
        assert decided["promoted"] is False and decided["refused_by"] == ["rollout"] and champion(project, mlflow_client) == 1
        assert [(a["kind"], a["title"]) for a in sent] == [("rejected", f"{project.name}: v2 refused by the rollout check(s)")]
        v2 = mlflow_client.get_model_version(project.name, "2")
        assert v2.tags["driftloop.decision"] == "retired" and v2.description.split("\n")[2].startswith("**Retired** after its rollout")
    assert "candidate" not in mlflow_client.get_registered_model(project.name).aliases
    # the next monitor run finds nothing to decide: the rollout is over
    again = project.monitor(*week(6))
    assert xcom_value(again, "rollout")["reason"] == "no rollout running"
