"""Every ``model.estimator`` through the real ``retrain`` DAG: it trains, registers a version whose
records name it, and the registered model loads in a fresh Python process and predicts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from include import estimators
from tests.conftest import ROOT
from tests.integration.conftest import stable_weeks, task_states, week

pytestmark = pytest.mark.integration

# few trees or rounds: this checks that each choice runs through the loop, not its quality
SMALL = {"hist_gradient_boosting": {"max_iter": 20}, "random_forest": {"n_estimators": 20}, "linear": {}}
TASKS = {
    "classification": {"data__target": "repaid", "model__metric": "roc_auc"},
    "regression": {"data__target": "amount", "model__metric": "neg_root_mean_squared_error"},
}

PREDICT = """
import json, sys
import pandas as pd
from include import registry, training
rows = pd.read_parquet(sys.argv[1])
model = registry.load_model(sys.argv[2])
print(json.dumps(training.predict(model, rows, sys.argv[3].split(","), sys.argv[4]).tolist()))
"""


@pytest.fixture(scope="module")
def stream_2w():
    frame = stable_weeks(2)
    # a regression target the features explain, with noise
    noise = np.random.default_rng(0).normal(0, 5, len(frame))
    return frame.assign(amount=frame.car_value * 0.002 + frame.age + noise)


@pytest.mark.parametrize("task", sorted(TASKS))
@pytest.mark.parametrize("name", sorted(estimators.ESTIMATORS))
def test_each_estimator_trains_registers_and_predicts_in_a_fresh_process(project_factory, stream_2w, mlflow_client, tmp_path, name, task):
    project = project_factory(
        f"{name}_{task}"[:20], model__estimator=name, model__params=SMALL[name], model__task=task, training__folds=2, **TASKS[task]
    )
    project.land(stream_2w)
    assert project.ingest(week(0)[0], week(2)[0]).state == "success"
    run = project.retrain(week(2)[0], window="14D")
    assert run.state == "success", task_states(run)

    version = mlflow_client.get_model_version(project.name, "1")
    assert version.tags["driftloop.estimator"] == name and set(version.aliases) == {"champion", "challenger"}
    assert mlflow_client.get_run(version.run_id).data.params["estimator"] == name
    import mlflow

    requirements = mlflow.artifacts.load_text(f"models:/{project.name}/1/requirements.txt")
    assert "scikit-learn==" in requirements and "skops==" in requirements

    data = project.settings.data
    rows = stream_2w.tail(200)
    path = tmp_path / "rows.parquet"
    rows.to_parquet(path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", PREDICT, str(path), f"models:/{project.name}/1", ",".join(data.features), task],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    fresh = np.array(json.loads(out.stdout.strip().splitlines()[-1]))

    from include import registry, training

    model = registry.load_model(f"models:/{project.name}/1")
    np.testing.assert_allclose(fresh, training.predict(model, rows, data.features, task))
    if task == "classification":
        assert np.all((fresh >= 0) & (fresh <= 1)) and training.score(model, rows, data.features, "repaid", "roc_auc") > 0.6
    else:
        assert np.corrcoef(fresh, rows["amount"])[0, 1] > 0.5
