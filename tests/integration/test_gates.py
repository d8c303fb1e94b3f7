"""The fairness gate and the business metric under the real ``retrain`` and ``monitor`` DAGs: a
challenger over the fairness gap, or worth less than the champion by more than
``promotion.max_business_drop``, is never promoted, with its reason in the card and an alert; the
numbers are metrics of the training run either way, and every verdict carries the business value."""

from __future__ import annotations

import pandas as pd
import pytest

from include.storage import Window
from tests.integration.conftest import alerts_for, champion, stable_weeks, task_states, week, xcom_value

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stream_6w():
    return stable_weeks(6)


def test_a_challenger_over_the_fairness_gap_is_refused_and_the_gap_is_logged(project_factory, stream_6w, mlflow_client, alert_hook):
    # any model approves the regions at slightly different rates: a gap of 0.0001 is always exceeded
    project = project_factory("unfair", training__folds=3, fairness={"group": "region", "metric": "selection_rate", "max_gap": 0.0001})
    project.land(stream_6w)
    assert project.ingest(week(0)[0], week(4)[0]).state == "success"
    run = project.retrain(week(4)[0], reason="initial")
    assert run.state == "success", task_states(run)

    fair = xcom_value(run, "evaluate")["fairness"]
    gap = fair["challenger"]["gap"]
    assert gap > 0.0001 and set(fair["challenger"]["judged"]) == set(stream_6w.region.unique()) and fair["champion"] is None
    promoted = xcom_value(run, "promote")
    assert promoted["promoted"] is False and promoted["refused_by"] == ["fairness"]
    with pytest.raises(Exception, match="champion"):
        mlflow_client.get_model_version_by_alias(project.name, "champion")
    card = mlflow_client.get_model_version(project.name, "1").description
    assert "**Refused** by the fairness check" in card and f"gap {gap:.4f}" in card and "exceeds fairness.max_gap 0.0001" in card
    assert "## Fairness" in card and "| region | rows | challenger v1 |" in card
    metrics = mlflow_client.get_run(xcom_value(run, "train")["run_id"]).data.metrics
    assert metrics["fairness_gap"] == pytest.approx(gap)
    assert {k for k in metrics if k.startswith("fairness_selection_rate.")} == {
        f"fairness_selection_rate.{r}" for r in stream_6w.region.unique()
    }
    sent = alerts_for(alert_hook, run)
    assert [(a["kind"], a["title"]) for a in sent] == [("rejected", f"{project.name}: v1 refused by the fairness check(s)")]
    assert "exceeds fairness.max_gap" in sent[0]["text"]


def test_a_challenger_worth_less_than_the_champion_is_refused_and_verdicts_track_the_value(
    project_factory, stream_6w, mlflow_client, alert_hook
):
    """The champion learnt weeks 0-3. In week 4 half the repaid loans are recorded as defaults, at
    random: a model that learns from it ranks the rows as well but scores them lower. The
    challenger's last-fold model (trained up to the last five days, week 4 included) then approves
    fewer of the last five days' good loans, each worth more than the risk it carries, than the
    champion does: it is worth less. ``min_improvement: -1`` lets the score rule pass, so the
    business check alone refuses it."""
    values = {"tp": 100, "fp": -50, "fn": 0, "tn": 0}
    project = project_factory(
        "worth",
        training__folds=3,
        promotion__min_improvement=-1.0,
        business={"metric": "expected_value", "values": values, "max_drop": 1.0},
    )
    data = stream_6w.copy()
    in_week_4 = (data.timestamp >= pd.Timestamp(week(4)[0], tz="UTC")) & (data.timestamp < pd.Timestamp(week(5)[0], tz="UTC"))
    repaid = data.index[in_week_4 & (data.repaid == 1)]
    data.loc[repaid[::2], "repaid"] = 0
    project.land(data)
    assert project.ingest(week(0)[0], week(6)[0]).state == "success"
    assert project.retrain(week(4)[0], reason="initial").state == "success"
    assert champion(project, mlflow_client) == 1

    # monitoring the inverted week: the business value falls below the champion's own, an alert says so
    mon = project.monitor(*week(4))
    assert mon.state == "success", task_states(mon)
    verdict = project.storage.read_json(project.storage.verdict_path(Window(*week(4))))
    worth = verdict["business"]
    assert worth["metric"] == "expected_value" and worth["value"] < worth["reference"] - 1.0 and worth["fell"] is True
    sent = alerts_for(alert_hook, mon)
    assert [a["kind"] for a in sent] == ["business"] and "expected_value fell to" in sent[0]["title"]

    run = project.retrain(week(6)[0], reason="manual", window="21D")
    assert run.state == "success", task_states(run)
    compared = xcom_value(run, "evaluate")
    business = compared["business"]
    assert business["challenger"]["value"] < business["champion"]["value"]
    assert [c["check"] for c in compared["checks"] if not c["passed"]] == ["business"]
    promoted = xcom_value(run, "promote")
    assert promoted["promoted"] is False and promoted["refused_by"] == ["business"] and champion(project, mlflow_client) == 1
    card = mlflow_client.get_model_version(project.name, "2").description
    assert "**Refused** by the business check; the champion stays v1" in card and "more than promotion.max_business_drop 0.0" in card
    assert "## Business" in card and "| champion v1 |" in card
    metrics = mlflow_client.get_run(xcom_value(run, "train")["run_id"]).data.metrics
    assert metrics["business_expected_value"] == pytest.approx(business["challenger"]["value"])
    assert metrics["champion_business_expected_value"] == pytest.approx(business["champion"]["value"])
    assert [a["kind"] for a in alerts_for(alert_hook, run)] == ["rejected"]
