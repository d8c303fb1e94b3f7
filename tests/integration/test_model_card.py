"""The model card and the baseline under the real ``retrain`` DAG: the registered version's
description says why it is (or is not) the champion, and a challenger that does not beat the dummy
baseline is never promoted, not even as the first champion, with its reason and an alert."""

from __future__ import annotations

import pytest

from tests.integration.conftest import alerts_for, stable_weeks, task_states, week, xcom_value

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stream_4w():
    return stable_weeks(4)


@pytest.fixture(scope="module")
def good(project_factory, stream_4w):
    project = project_factory("good", training__folds=4)
    project.land(stream_4w)
    assert project.ingest(week(0)[0], week(4)[0]).state == "success"
    run = project.retrain(week(4)[0], reason="initial")
    assert run.state == "success", task_states(run)
    return project, run


def test_the_champions_description_is_its_model_card(good, mlflow_client):
    project, run = good
    version = mlflow_client.get_model_version(project.name, "1")
    card = version.description
    assert card.startswith(f"# {project.name} v1\n\n**Champion.** Promoted, the first champion: no champion yet; challenger roc_auc")
    training_run = mlflow_client.get_run(version.run_id)
    tags = training_run.data.tags
    for fact in (
        "2026-01-05 00:00 .. 2026-02-02 00:00 (end excluded)",
        f"{int(training_run.data.params['rows']):,} labelled rows",
        "| why retrained | initial |",
        "classification: hist_gradient_boosting (learning_rate=0.15, max_iter=40)",
        f"`{tags['driftloop.data_digest']}`",
        f"`{tags['driftloop.config_digest']}`",
        f"`{tags['driftloop.code_version']}`",
        "against the config's rules (no champion profile yet)",
        f"(Airflow run `{run.run_id}`)",
        "| fold | trained up to | validated on | rows (train / valid) | roc_auc | baseline | log_loss | f1 | brier |",
        "| challenger v1 (its last-fold model) |",
        "| baseline (prior: always 0.",
        "- passed: baseline: beats the baseline",
        "- passed: champion: no champion yet",
    ):
        assert fact in card, fact
    assert len(tags["driftloop.data_digest"]) == 16 and len(tags["driftloop.config_digest"]) == 16 and tags["driftloop.code_version"] != ""
    # the same card on the run, with the facts it was drawn from
    import mlflow

    assert mlflow.artifacts.load_text(f"runs:/{version.run_id}/model_card.md") == card
    facts = mlflow.artifacts.load_dict(f"runs:/{version.run_id}/model_card.json")
    assert facts["decision"]["state"] == "promoted" and facts["comparison"]["baseline_score"] == pytest.approx(0.5)


def test_the_training_run_logs_the_baseline_the_secondary_metrics_and_the_calibration_chart(good, mlflow_client):
    project, _ = good
    run = mlflow_client.get_run(mlflow_client.get_model_version(project.name, "1").run_id)
    metrics = run.data.metrics
    assert metrics["baseline_cv_roc_auc_mean"] == pytest.approx(0.5) and metrics["baseline_holdout_roc_auc"] == pytest.approx(0.5)
    for name in ("log_loss", "f1", "brier"):
        history = mlflow_client.get_metric_history(run.info.run_id, f"cv_{name}")
        assert sorted(m.step for m in history) == [0, 1, 2, 3] and f"cv_{name}_mean" in metrics
    assert sorted(m.step for m in mlflow_client.get_metric_history(run.info.run_id, "baseline_cv_roc_auc")) == [0, 1, 2, 3]
    assert {"cv/folds.png", "cv/calibration.png"} <= {a.path for a in mlflow_client.list_artifacts(run.info.run_id, "cv")}


def test_a_challenger_worse_than_the_baseline_is_never_promoted(project_factory, stream_4w, mlflow_client, alert_hook):
    """The labels of the last days say the opposite of what came before: the last fold's model
    ranks its out-of-time rows worse than the prior does. No champion before, none after."""
    project = project_factory("inverted", training__folds=4)
    flipped = stream_4w.copy()
    late = flipped.timestamp >= flipped.timestamp.max() - __import__("pandas").Timedelta(days=6)
    flipped.loc[late, "repaid"] = 1 - flipped.loc[late, "repaid"]
    project.land(flipped)
    assert project.ingest(week(0)[0], week(4)[0]).state == "success"
    run = project.retrain(week(4)[0], reason="initial")
    assert run.state == "success", task_states(run)

    comparison = xcom_value(run, "evaluate")
    assert not comparison["better"] and comparison["challenger_score"] < comparison["baseline_score"]
    promoted = xcom_value(run, "promote")
    assert promoted["promoted"] is False and promoted["refused_by"] == ["baseline"] and promoted["champion"] is None
    with pytest.raises(Exception, match="champion"):
        mlflow_client.get_model_version_by_alias(project.name, "champion")
    version = mlflow_client.get_model_version(project.name, "1")
    assert version.tags["driftloop.decision"] == "rejected"
    assert version.description.split("\n")[2].startswith(
        "**Refused** by the baseline check; the champion stays none: does not beat the baseline"
    )
    assert "- **failed**: baseline: does not beat the baseline" in version.description
    sent = alerts_for(alert_hook, run)
    assert [(a["kind"], a["title"]) for a in sent] == [("rejected", f"{project.name}: v1 refused by the baseline check(s)")]
    assert "does not beat the baseline" in sent[0]["text"]
