"""The choice of model (``model.estimator``): every entry is a whole pipeline for both tasks, saved
and loaded with skops under driftloop's own trusted types, and the config names what is wrong."""

import numpy as np
import pytest
import skops.io as sio

from include import estimators, training
from include.config import ConfigError, load_settings
from tests.conftest import write_config

NUMERIC, CATEGORICAL = ["car_value", "age", "credit_score"], ["region", "employment"]
SMALL = {"hist_gradient_boosting": {"max_iter": 10}, "random_forest": {"n_estimators": 10}, "linear": {}}


def _fit(stream, name: str, task: str):
    frame = stream[stream.timestamp < "2026-01-19"].reset_index(drop=True)
    target = frame.repaid if task == "classification" else frame.car_value * 0.01 + frame.age
    model = estimators.build(name, task, NUMERIC, CATEGORICAL, SMALL[name])
    return model.fit(frame[NUMERIC + CATEGORICAL], target), frame, target


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("name", sorted(estimators.ESTIMATORS))
def test_each_estimator_is_a_whole_pipeline_that_skops_round_trips_with_the_trusted_types(stream, name, task):
    model, frame, target = _fit(stream, name, task)
    untrusted = set(sio.get_untrusted_types(data=sio.dumps(model)))
    assert untrusted <= set(estimators.get(name).trusted_types), untrusted - set(estimators.get(name).trusted_types)
    loaded = sio.loads(sio.dumps(model), trusted=training.SKOPS_TRUSTED_TYPES)
    X = frame[NUMERIC + CATEGORICAL]
    np.testing.assert_array_equal(
        training.predict(loaded, X, NUMERIC + CATEGORICAL, task), training.predict(model, X, NUMERIC + CATEGORICAL, task)
    )
    # it learns: better than a constant on the rows it saw
    if task == "classification":
        assert training.score(model, frame.assign(y=target), NUMERIC + CATEGORICAL, "y", "roc_auc") > 0.7
    else:
        assert training.score(model, frame.assign(y=target), NUMERIC + CATEGORICAL, "y", "r2") > 0.5


@pytest.mark.parametrize("name", sorted(estimators.ESTIMATORS))
def test_each_estimator_takes_unseen_categories_and_missing_values(stream, name):
    model, frame, _ = _fit(stream, name, "classification")
    odd = frame.head(4).copy()
    odd["region"] = ["atlantis", None, "atlantis", frame.region.iloc[0]]
    odd.loc[odd.index[:2], "car_value"] = np.nan
    odd.loc[odd.index[1], "employment"] = np.nan
    p = training.predict(model, odd, NUMERIC + CATEGORICAL, "classification")
    assert p.shape == (4,) and np.all((p >= 0) & (p <= 1))


def test_params_go_to_the_model_over_the_estimators_defaults():
    forest = estimators.build("random_forest", "classification", NUMERIC, CATEGORICAL, {"n_estimators": 7}, seed=3)
    assert forest.named_steps["model"].get_params()["n_estimators"] == 7
    assert forest.named_steps["model"].get_params()["min_samples_leaf"] == 5  # its default here
    assert forest.named_steps["model"].random_state == 3
    assert type(estimators.build("linear", "regression", NUMERIC, CATEGORICAL).named_steps["model"]).__name__ == "Ridge"


def test_the_trusted_types_are_every_estimators_and_the_requirements_are_pinned():
    assert set(training.SKOPS_TRUSTED_TYPES) == {t for e in estimators.ESTIMATORS.values() for t in e.trusted_types}
    from include.registry import pip_requirements

    pins = pip_requirements("random_forest")
    assert {p.split("==")[0] for p in pins} == {"mlflow", "scikit-learn", "pandas", "numpy", "scipy", "skops"}
    assert all("==" in p and p.split("==")[1] for p in pins)


def test_the_config_chooses_the_estimator_and_names_what_is_wrong(tmp_path):
    chosen = load_settings(write_config(tmp_path, model__estimator="random_forest", model__params={"n_estimators": 50}))
    assert chosen.model.estimator == "random_forest" and chosen.model.params == {"n_estimators": 50}
    assert load_settings(write_config(tmp_path)).model.estimator == "hist_gradient_boosting"  # the default
    with pytest.raises(
        ConfigError,
        match=r"model\.estimator: .*unknown estimator 'xgb'; choose one of \['hist_gradient_boosting', 'linear', 'random_forest'\]",
    ):
        load_settings(write_config(tmp_path, model__estimator="xgb"))
    # the demo's boosting params do not fit a forest: named, with what it takes
    with pytest.raises(
        ConfigError, match=r"model\.params \['learning_rate', 'max_iter'\] are not parameters of random_forest .*n_estimators"
    ):
        load_settings(write_config(tmp_path, model__estimator="random_forest"))
