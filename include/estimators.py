"""The models a config may choose (``model.estimator``): each a complete scikit-learn ``Pipeline``
(preprocessing and estimator) for both tasks, with what saving and serving it needs.

Adding one is one entry in ``ESTIMATORS``: how to build it, the skops types it holds that skops
does not trust by default (``tests/unit/test_estimators.py`` checks each list covers its pipeline
on both tasks), and any package its pipeline imports beyond scikit-learn (the registered model's
pip requirements). Pure: nothing here touches storage or MLflow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

# The ColumnTransformer keeps a partial of check_array for its input validation: every pipeline here
# holds one
_COLUMN_TRANSFORMER = ["functools.partial", "sklearn.utils.validation.check_array"]


@dataclass(frozen=True)
class Estimator:
    """One choice of ``model.estimator``.

    Attributes:
        name: the config's value.
        build: ``(task, numeric, categorical, params, seed) -> Pipeline`` (unfitted).
        trusted_types: the types of the fitted pipeline skops refuses unless named.
        requirements: packages beyond MLflow, scikit-learn, pandas, NumPy, SciPy and skops that
            loading the model needs (pinned at the installed version when it is logged).
        about: one line for ``--help`` texts and the model card.
    """

    name: str
    build: Callable
    trusted_types: tuple[str, ...] = ()
    requirements: tuple[str, ...] = ()
    about: str = ""
    # what model.params sets when the config names none (the demo's params are for the default)
    defaults: dict = field(default_factory=dict)


def _ordinal_encoder():
    from sklearn.preprocessing import OrdinalEncoder

    # unseen categories and missing values become NaN, which the trees route like a missing value
    return OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=float("nan"), encoded_missing_value=float("nan"))


def _trees_columns(numeric: list[str], categorical: list[str]):
    """Numbers as they are (the trees handle missing values), categories as ordinal codes."""
    from sklearn.compose import ColumnTransformer

    return ColumnTransformer(
        [("numeric", "passthrough", numeric), ("categorical", _ordinal_encoder(), categorical)],
        remainder="drop",
        verbose_feature_names_out=False,
    )


def _hist_gradient_boosting(task: str, numeric: list[str], categorical: list[str], params: dict, seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.pipeline import Pipeline

    is_categorical = [False] * len(numeric) + [True] * len(categorical)
    cls = HistGradientBoostingClassifier if task == "classification" else HistGradientBoostingRegressor
    return Pipeline(
        [
            ("preprocess", _trees_columns(numeric, categorical)),
            ("model", cls(categorical_features=is_categorical, random_state=seed, **params)),
        ]
    )


def _linear(task: str, numeric: list[str], categorical: list[str], params: dict, seed: int):
    """Missing numbers imputed by the median (with an indicator of which were missing) and scaled;
    categories one-hot encoded, a missing value being a category of its own and an unseen one
    all zeros."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numbers = make_pipeline(SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True), StandardScaler())
    pre = ColumnTransformer(
        [("numeric", numbers, numeric), ("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical)],
        remainder="drop",
        verbose_feature_names_out=False,
    )
    if task == "classification":
        model = LogisticRegression(random_state=seed, **{"max_iter": 1000, **params})
    else:
        model = Ridge(random_state=seed, **params)
    return Pipeline([("preprocess", pre), ("model", model)])


def _random_forest(task: str, numeric: list[str], categorical: list[str], params: dict, seed: int):
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.pipeline import Pipeline

    cls = RandomForestClassifier if task == "classification" else RandomForestRegressor
    return Pipeline([("preprocess", _trees_columns(numeric, categorical)), ("model", cls(random_state=seed, **params))])


ESTIMATORS: dict[str, Estimator] = {
    e.name: e
    for e in (
        Estimator(
            "hist_gradient_boosting",
            _hist_gradient_boosting,
            (*_COLUMN_TRANSFORMER, "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"),
            about="histogram gradient boosting (scikit-learn's HistGradientBoosting), categories as native categories",
        ),
        Estimator(
            "linear",
            _linear,
            # the OneHotEncoder's output dtype (float64) is kept as a NumPy dtype object
            (*_COLUMN_TRANSFORMER, "numpy.dtype"),
            about="logistic regression (classification) or ridge regression, on scaled numbers and one-hot categories",
        ),
        Estimator(
            "random_forest",
            _random_forest,
            (*_COLUMN_TRANSFORMER, "sklearn.tree._tree.Tree"),
            about="random forest (scikit-learn's RandomForest), categories as ordinal codes",
            defaults={"n_estimators": 100, "min_samples_leaf": 5},
        ),
    )
}
DEFAULT = "hist_gradient_boosting"


def get(name: str) -> Estimator:
    """The estimator ``name``.

    Raises:
        KeyError: no such estimator (the message lists the choices).
    """
    try:
        return ESTIMATORS[name]
    except KeyError:
        raise KeyError(f"unknown estimator {name!r}; choose one of {sorted(ESTIMATORS)}") from None


def build(name: str, task: str, numeric: list[str], categorical: list[str], params: dict | None = None, seed: int = 0):
    """The unfitted pipeline of estimator ``name`` for ``task``; ``params`` go to its final step
    (over the estimator's own defaults)."""
    chosen = get(name)
    return chosen.build(task, list(numeric), list(categorical), {**chosen.defaults, **(params or {})}, seed)


def parameter_names(name: str, task: str) -> set[str]:
    """The parameters ``model.params`` may set for estimator ``name`` on ``task``."""
    return set(build(name, task, ["x"], ["c"]).named_steps["model"].get_params(deep=False))


def trusted_types() -> list[str]:
    """Every estimator's skops trusted types: what a driftloop model may hold, whichever estimator
    made it (the loader trusts this list, never the one stored with a model)."""
    return sorted({t for e in ESTIMATORS.values() for t in e.trusted_types})
