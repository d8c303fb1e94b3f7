"""retrain under dag.test(): the first model of a project and every record MLflow must hold of it.

Four stable weeks are ingested in one run, then ``retrain`` runs with ``reason=initial``. The
assertions read the records back from the MLflow server, as a user or a script would.
"""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import START, alerts_for, rows_in, stable_weeks, task_states, week, xcom_value

pytestmark = pytest.mark.integration

FOLDS = 4


@pytest.fixture(scope="module")
def stream_4w():
    return stable_weeks(4)


@pytest.fixture(scope="module")
def project(project_factory, stream_4w):
    project = project_factory(training__folds=FOLDS)
    project.land(stream_4w)
    dr = project.ingest(week(0)[0], week(4)[0])
    assert dr.state == "success", task_states(dr)
    return project


@pytest.fixture(scope="module")
def initial(project):
    return project.retrain(week(4)[0], reason="initial", window="28D")


@pytest.fixture(scope="module")
def training_run(initial, project, mlflow_client):
    exp = mlflow_client.get_experiment_by_name(project.name)
    assert exp is not None, f"no MLflow experiment named {project.name}"
    runs = mlflow_client.search_runs([exp.experiment_id])
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return runs[0]


def test_initial_retrain_succeeds_and_promotes(initial):
    assert initial.state == "success"
    states = task_states(initial)
    assert states["approval"] == "skipped"  # promotion.mode is auto
    assert {k: v for k, v in states.items() if k != "approval"} == dict.fromkeys(
        ["window", "gate", "train", "evaluate", "route", "promote", "retain"], "success"
    )


def test_train_returns_a_link_to_its_mlflow_run(initial, training_run, mlflow_server):
    trained = xcom_value(initial, "train")
    assert trained["run_id"] == training_run.info.run_id and trained["version"] == 1
    assert trained["mlflow_url"] == f"{mlflow_server}/#/experiments/{training_run.info.experiment_id}/runs/{training_run.info.run_id}"


def test_mlflow_buttons_point_at_the_run_and_the_champion_version(initial, project, mlflow_server):
    """The worker stores each task's "MLflow" extra link as an XCom that the UI reads."""
    run_page = xcom_value(initial, "train")["mlflow_url"]
    assert xcom_value(initial, "train", key="_link_MlflowLink") == run_page
    assert xcom_value(initial, "evaluate", key="_link_MlflowLink") == run_page  # the comparison is logged to that run
    version_page = f"{mlflow_server}/#/models/{project.name}/versions/1"
    assert xcom_value(initial, "promote")["mlflow_url"] == version_page
    assert xcom_value(initial, "promote", key="_link_MlflowLink") == version_page
    assert xcom_value(initial, "gate", key="_link_MlflowLink") is None  # only tasks that write to MLflow get the button


def test_a_promotion_sends_one_alert(initial, project, alert_hook):
    sent = alerts_for(alert_hook, initial)
    assert [(a["kind"], a["task_id"], a["title"]) for a in sent] == [("promotion", "promote", f"{project.name}: v1 is the new champion")]
    assert sent[0]["link"].endswith(f"/#/models/{project.name}/versions/1") and "no champion yet" in sent[0]["text"]


def test_version_one_is_champion_and_challenger(initial, project, mlflow_client):
    versions = mlflow_client.search_model_versions(f"name = '{project.name}'")
    assert [int(v.version) for v in versions] == [1]
    assert mlflow_client.get_model_version_by_alias(project.name, "champion").version == "1"
    assert mlflow_client.get_model_version_by_alias(project.name, "challenger").version == "1"
    tags = mlflow_client.get_model_version(project.name, "1").tags
    assert tags["driftloop.window_start"] == "2026-01-05T00:00:00+00:00"
    assert tags["driftloop.window_end"] == "2026-02-02T00:00:00+00:00"
    assert tags["driftloop.reason"] == "initial"
    assert tags["driftloop.decision"] == "promoted"
    model_tags = mlflow_client.get_registered_model(project.name).tags
    assert json.loads(model_tags["driftloop.champion_history"]) == [1]


def test_training_run_tags_metrics_and_inputs(initial, training_run, project, mlflow_client, stream_4w):
    tags = training_run.data.tags
    assert tags["driftloop.reason"] == "initial"
    assert tags["driftloop.window_start"] == "2026-01-05T00:00:00+00:00"
    assert tags["driftloop.window_end"] == "2026-02-02T00:00:00+00:00"
    assert tags["driftloop.airflow_run_id"] == initial.run_id
    assert tags["driftloop.decision"] == "promote"
    assert mlflow_client.get_model_version(project.name, "1").run_id == training_run.info.run_id

    history = mlflow_client.get_metric_history(training_run.info.run_id, "cv_roc_auc")
    assert sorted(m.step for m in history) == list(range(FOLDS))
    scores = [m.value for m in sorted(history, key=lambda m: m.step)]
    assert all(0.5 < s <= 1.0 for s in scores), scores
    metrics = training_run.data.metrics
    assert metrics["cv_roc_auc_mean"] == pytest.approx(sum(scores) / FOLDS)
    assert "holdout_roc_auc" in metrics
    assert training_run.data.params["rows"] == str(len(rows_in(stream_4w, START, week(4)[0])))

    inputs = training_run.inputs.dataset_inputs
    assert inputs, "the training data is not logged as a dataset input"
    assert any(tag.key == "mlflow.data.context" and tag.value == "training" for i in inputs for tag in i.tags)


def test_logged_model_has_signature_and_input_example(initial, project):
    import mlflow
    from mlflow.models import Model

    info = mlflow.models.get_model_info(f"models:/{project.name}/1")
    assert info.signature is not None
    types = {spec.name: spec.type.name for spec in info.signature.inputs.inputs}
    assert set(types) == set(project.settings.data.features)
    # integer columns are declared as doubles, so a later batch with a missing value still fits
    assert {types[c] for c in project.settings.data.numeric} == {"double"}, types
    assert info.saved_input_example_info is not None

    example = Model.load(f"models:/{project.name}/1").load_input_example(mlflow.artifacts.download_artifacts(f"models:/{project.name}/1"))
    assert list(example.columns) == project.settings.data.features and len(example) > 0


def test_fold_chart_and_gate_profile_artifacts(initial, training_run, mlflow_client, project):
    run_id = training_run.info.run_id
    assert "cv/folds.png" in {a.path for a in mlflow_client.list_artifacts(run_id, "cv")}
    assert "gate/profile.json" in {a.path for a in mlflow_client.list_artifacts(run_id, "gate")}

    import mlflow

    profile = mlflow.artifacts.load_dict(f"runs:/{run_id}/gate/profile.json")
    assert profile["window"] == {"start": "2026-01-05T00:00:00+00:00", "end": "2026-02-02T00:00:00+00:00"}
    assert set(profile["columns"]) == set(project.settings.data.features)


def test_the_run_keeps_out_of_time_scores_and_targets_for_monitoring(initial, training_run, project, mlflow_client, stream_4w):
    """Prediction drift compares an interval's scores with these: the last fold's rows, scored by the
    last fold's model (trained only on earlier rows)."""
    from include import registry, tracking

    folds = mlflow_client.get_run(training_run.info.run_id)
    import mlflow

    summary = mlflow.artifacts.load_dict(f"runs:/{training_run.info.run_id}/cv/folds.json")
    reference = tracking.monitoring_reference(registry.get_version(project.name, 1))
    assert list(reference.columns) == ["prediction", "target"] and len(reference) == len(stream_4w) == int(folds.data.params["rows"])
    assert reference["prediction"].notna().sum() == summary[-1]["valid_rows"]  # the last fold's out-of-time rows
    assert reference["prediction"].dropna().between(0, 1).all() and reference["prediction"].dropna().nunique() > 100
    assert sorted(reference["target"].unique()) == [0, 1]


def test_driftloop_check_uses_the_champions_learned_tolerances(initial, project, mlflow_server, monkeypatch, tmp_path, capsys):
    from include import cli

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    batch = rows_in(stable_weeks(5), *week(4)).copy()
    batch.to_parquet(tmp_path / "week4.parquet", index=False)
    assert cli.main(["check", "--config", str(project.config), "--input", str(tmp_path / "week4.parquet"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "learned tolerances from the champion's training window: {'start': '2026-01-05T00:00:00+00:00'" in out
    assert "| car_value | expect_column_values_to_be_between | profile | ok |" in out
    batch["car_value"] = batch["car_value"] * 100  # far outside what v1 was trained on
    batch.to_parquet(tmp_path / "week4.parquet", index=False)
    assert cli.main(["check", "--config", str(project.config), "--input", str(tmp_path / "week4.parquet"), "--quiet"]) == 1
    assert "| car_value | expect_column_values_to_be_between | profile | FAILED |" in capsys.readouterr().out
    # without MLflow, the config's rules only
    assert cli.main(["check", "--config", str(project.config), "--input", str(tmp_path / "week4.parquet"), "--no-champion", "--quiet"]) == 0


def test_train_challenger_is_idempotent_per_airflow_run(initial, training_run, project, mlflow_client):
    """A retried train task (same Airflow run id) reuses its version instead of registering another."""
    from include.retraining import train_challenger
    from include.storage import Window

    window = Window.parse(week(0)[0], week(4)[0])
    first = train_challenger(project.settings, window, "initial", initial.run_id)
    second = train_challenger(project.settings, window, "initial", initial.run_id)
    assert first["version"] == second["version"] == 1
    assert first["run_id"] == second["run_id"] == training_run.info.run_id
    assert first["reused"] and second["reused"]
    assert first["valid_start"] is not None
    assert [int(v.version) for v in mlflow_client.search_model_versions(f"name = '{project.name}'")] == [1]
    exp = mlflow_client.get_experiment_by_name(project.name)
    assert len(mlflow_client.search_runs([exp.experiment_id])) == 1


def test_window_without_data_fails_at_the_gate(initial, project, mlflow_client):
    """A retrain over a span nobody ingested fails at its (not retried) gate: no run, no version."""
    dr = project.retrain(week(10)[0], reason="manual", window="7D")
    assert dr.state == "failed"
    states = task_states(dr)
    assert states["gate"] == "failed"
    assert states["train"] == "upstream_failed"
    assert states["promote"] == "upstream_failed", states
    exp = mlflow_client.get_experiment_by_name(project.name)
    assert len(mlflow_client.search_runs([exp.experiment_id])) == 1
    assert [int(v.version) for v in mlflow_client.search_model_versions(f"name = '{project.name}'")] == [1]
    assert mlflow_client.get_model_version_by_alias(project.name, "champion").version == "1"


def test_retried_train_task_completes_a_half_finished_registration(initial, training_run, project, mlflow_client):
    """The first attempt of ``train`` died after its MLflow run finished but before the version was
    tagged and aliased: the retry must finish the registration, not only find the version.
    (``driftloop.valid_start`` is a run tag set when the run starts, so it survives such a crash.)"""
    from include.retraining import train_challenger
    from include.storage import Window

    valid_start = training_run.data.tags["driftloop.valid_start"]
    mlflow_client.delete_registered_model_alias(project.name, "challenger")
    mlflow_client.delete_model_version_tag(project.name, "1", "driftloop.window_end")
    try:
        again = train_challenger(project.settings, Window.parse(week(0)[0], week(4)[0]), "initial", initial.run_id)
        assert again["version"] == 1
        assert again["valid_start"] == valid_start
        restored = mlflow_client.get_model_version_by_alias(project.name, "challenger")
        assert restored.version == "1" and restored.tags["driftloop.window_end"] == training_run.data.tags["driftloop.window_end"]
    finally:
        mlflow_client.set_registered_model_alias(project.name, "challenger", "1")


def test_a_run_left_failed_after_registering_is_reused_not_registered_again(initial, training_run, project, mlflow_client):
    """A worker killed after log_model registered the version leaves the run FAILED (or RUNNING):
    the retry reuses that version and closes the run, instead of registering a second one."""
    from include.retraining import train_challenger
    from include.storage import Window

    mlflow_client.set_terminated(training_run.info.run_id, "FAILED")
    again = train_challenger(project.settings, Window.parse(week(0)[0], week(4)[0]), "initial", initial.run_id)
    assert again["version"] == 1 and again["reused"]
    assert [int(v.version) for v in mlflow_client.search_model_versions(f"name = '{project.name}'")] == [1]
    assert mlflow_client.get_run(training_run.info.run_id).info.status == "FINISHED"


def test_an_attempt_that_died_before_registering_is_continued_not_duplicated(initial, project, mlflow_client, monkeypatch):
    """The first attempt of ``train`` started its MLflow run, logged its metrics, then failed before
    ``log_model`` (MLflow went away longer than the client's retries): the retry continues that run.
    One training run for the Airflow run, one version, each fold's score logged once.
    (Last in this module: it registers version 2.)"""
    from include import registry
    from include.retraining import train_challenger
    from include.storage import Window

    airflow_run_id = "manual__died_before_registering"
    real = registry.log_model

    def mlflow_gone(*args, **kwargs):
        raise ConnectionError("MLflow is down")

    window = Window.parse(week(0)[0], week(4)[0])
    monkeypatch.setattr(registry, "log_model", mlflow_gone)
    with pytest.raises(ConnectionError):
        train_challenger(project.settings, window, "manual", airflow_run_id)
    monkeypatch.setattr(registry, "log_model", real)
    again = train_challenger(project.settings, window, "manual", airflow_run_id)
    exp = mlflow_client.get_experiment_by_name(project.name)
    runs = mlflow_client.search_runs([exp.experiment_id], f"tags.`driftloop.airflow_run_id` = '{airflow_run_id}'")
    assert [r.info.run_id for r in runs] == [again["run_id"]] and again["version"] == 2 and not again["reused"]
    history = mlflow_client.get_metric_history(again["run_id"], f"cv_{project.settings.model.metric}")
    assert sorted(m.step for m in history) == list(range(project.settings.training.folds))
    assert len(mlflow_client.get_metric_history(again["run_id"], f"cv_{project.settings.model.metric}_mean")) == 1
    assert mlflow_client.get_run(again["run_id"]).info.status == "FINISHED"
