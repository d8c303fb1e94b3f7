"""Pure training logic: the model pipeline and time-based cross-validation.

Nothing here touches storage or MLflow. Functions take frames and settings and return estimators,
scores and row indices, never changing their inputs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from include import estimators

if TYPE_CHECKING:
    from include.config import Settings

log = logging.getLogger(__name__)

# The types a driftloop model may hold that skops does not trust by default, whichever estimator
# made it (see include.estimators): MLflow serialises with skops, which refuses unnamed types; each
# is named rather than falling back to pickle.
SKOPS_TRUSTED_TYPES = estimators.trusted_types()


@dataclass
class Fold:
    """One time-ordered split: training rows all earlier than validation rows."""

    number: int
    train_index: np.ndarray
    valid_index: np.ndarray
    train_end: pd.Timestamp
    valid_start: pd.Timestamp
    valid_end: pd.Timestamp
    score: float | None = None
    # the primary metric of the dummy baseline (``baseline_model``) fitted on the same training rows
    baseline: float | None = None
    # the secondary metrics (``SECONDARY``) on the validation rows, by their natural names and signs
    metrics: dict[str, float | None] = field(default_factory=dict)


@dataclass
class CVResult:
    folds: list[Fold]
    metric: str
    # per row of the training frame: the last fold's model's score on the last fold's validation
    # rows (the out-of-time rows promotion compares on; that model saw only earlier rows), NaN
    # elsewhere. Monitoring compares an interval's scores with these (prediction drift). Earlier
    # folds' models learnt from fewer rows and score differently: a stable week read as drifted
    # against them (normed Wasserstein 0.12 against 0.07 here).
    oot: np.ndarray | None = None
    # per row: the score of the fold model that validated it (every fold's validation rows), NaN
    # for the first fold's training rows: what the calibration chart draws
    oot_all: np.ndarray | None = None
    # the baseline of the last fold (what the comparison rows are scored with): ``{"strategy",
    # "value"}``, the positive class's prior or the target's mean on that fold's training rows
    baseline: dict | None = None

    @property
    def scores(self) -> list[float]:
        return [f.score for f in self.folds]

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores))

    @property
    def std(self) -> float:
        return float(np.std(self.scores))

    @property
    def baseline_mean(self) -> float | None:
        scores = [f.baseline for f in self.folds]
        return None if any(s is None for s in scores) else float(np.mean(scores))

    def metric_means(self) -> dict[str, float]:
        """Each secondary metric's mean over the folds where it could be computed."""
        names = dict.fromkeys(k for f in self.folds for k in f.metrics)
        out = {}
        for name in names:
            values = [f.metrics.get(name) for f in self.folds if f.metrics.get(name) is not None]
            if values:
                out[name] = float(np.mean(values))
        return out

    def summary(self) -> list[dict]:
        return [
            {
                "fold": f.number,
                "train_rows": int(len(f.train_index)),
                "valid_rows": int(len(f.valid_index)),
                "train_end": f.train_end.isoformat(),
                "valid_start": f.valid_start.isoformat(),
                "valid_end": f.valid_end.isoformat(),
                "score": f.score,
                "baseline": f.baseline,
                "metrics": dict(f.metrics),
            }
            for f in self.folds
        ]


def build_pipeline(
    task: str, numeric: list[str], categorical: list[str], params: dict | None = None, seed: int = 0, estimator: str = estimators.DEFAULT
):
    """The configured model as one scikit-learn ``Pipeline``: preprocessing and ``estimator``
    (``include.estimators``; by default histogram gradient boosting, which takes missing numbers
    as they are and ordinal-encoded categories as categories, unseen ones becoming missing)."""
    return estimators.build(estimator, task, numeric, categorical, params, seed)


def pipeline(settings: Settings):
    """The unfitted pipeline ``settings.model`` describes."""
    data, model_cfg = settings.data, settings.model
    return build_pipeline(model_cfg.task, data.numeric, data.categorical, model_cfg.params, settings.training.seed, model_cfg.estimator)


def time_folds(timestamps: pd.Series, folds: int) -> list[Fold]:
    """Splits rows into ``folds`` expanding-window folds ordered by event time.

    Rows are ordered by time; scikit-learn's ``TimeSeriesSplit`` cuts that order; a cut that falls
    inside a run of equal timestamps is moved later so that every training row is strictly earlier than
    every validation row of its fold.

    Raises:
        ValueError: too few rows for the number of folds.
    """
    from sklearn.model_selection import TimeSeriesSplit

    # as datetime64 values (UTC): a zone-aware Series' to_numpy() is an object array built one
    # Timestamp at a time (2.8 s at 1M rows, then an object sort)
    stamps = pd.DatetimeIndex(timestamps)
    zone = stamps.tz
    values = stamps.tz_convert("UTC").tz_localize(None).to_numpy() if zone is not None else stamps.to_numpy()
    order = np.argsort(values, kind="stable")
    if len(order) < 2 * (folds + 1):
        raise ValueError(f"{len(order)} rows are too few for {folds} time-based folds")
    sorted_ts = values[order]

    def at(position: int) -> pd.Timestamp:
        stamp = pd.Timestamp(sorted_ts[position])
        return stamp.tz_localize("UTC").tz_convert(zone) if zone is not None else stamp

    out = []
    for number, (train_pos, valid_pos) in enumerate(TimeSeriesSplit(n_splits=folds).split(order)):
        cut, last = valid_pos[0], valid_pos[-1]
        # rows sharing the last training timestamp join the training side
        while cut <= last and sorted_ts[cut - 1] == sorted_ts[cut]:
            cut += 1
        if cut > last:
            raise ValueError(f"fold {number}: every validation row shares the timestamp of a training row")
        train_pos = np.arange(0, cut)
        valid_pos = np.arange(cut, last + 1)
        out.append(
            Fold(
                number=number,
                train_index=order[train_pos],
                valid_index=order[valid_pos],
                train_end=at(train_pos[-1]),
                valid_start=at(valid_pos[0]),
                valid_end=at(valid_pos[-1]),
            )
        )
    return out


def score(model, frame: pd.DataFrame, features: list[str], target: str, metric: str, predictions: np.ndarray | None = None) -> float:
    """Scores a fitted model with a scikit-learn scorer name (greater is better for every scorer).

    Args:
        predictions: what ``predict`` returned for these rows, when the caller has it: the scorer
            reads them instead of running the model on the rows a second time.

    Raises:
        ValueError: the metric cannot be computed on these rows (for example one class only).
    """
    from sklearn.metrics import get_scorer

    y = frame[target]
    if metric.startswith("roc_auc") and y.nunique() < 2:
        raise ValueError(f"{metric} needs both classes; the {len(y)} rows hold only {y.unique().tolist()}")
    scored = model if predictions is None else _replayed(model, np.asarray(predictions, dtype="float64"), len(y))
    return float(get_scorer(metric)(scored, frame[features], y))


def _replayed(model, predictions: np.ndarray, rows: int):
    """``model`` as a scikit-learn scorer sees it, answering with ``predictions`` (``predict``'s
    output for the scored rows) instead of running again: at a million rows, running the
    gradient-boosting model a second time was a third of monitor's scoring time. A classifier's
    ``predict_proba`` is ``[1 - p, p]`` and its ``predict`` the class of the larger, as
    HistGradientBoosting's own are; scorers that would ask the model for ``decision_function``
    (ROC AUC, average precision) take ``predict_proba`` instead, which ranks the rows the same."""
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

    if len(predictions) != rows:
        raise ValueError(f"{len(predictions)} predictions for {rows} rows")
    if not hasattr(model, "classes_"):

        class Regressor(RegressorMixin, BaseEstimator):
            def predict(self, X):
                return predictions

        return Regressor()
    classes = model.classes_

    class Classifier(ClassifierMixin, BaseEstimator):
        classes_ = classes

        def predict_proba(self, X):
            return np.column_stack([1.0 - predictions, predictions])

        def predict(self, X):
            return classes[np.argmax(self.predict_proba(X), axis=1)]

    return Classifier()


# Logged per fold beside the primary metric: natural name -> (scikit-learn scorer, sign that turns
# the scorer's value back into the natural one: log loss, Brier score and errors are lower-better)
SECONDARY: dict[str, dict[str, tuple[str, int]]] = {
    "classification": {"roc_auc": ("roc_auc", 1), "log_loss": ("neg_log_loss", -1), "f1": ("f1", 1), "brier": ("neg_brier_score", -1)},
    "regression": {"rmse": ("neg_root_mean_squared_error", -1), "mae": ("neg_mean_absolute_error", -1), "r2": ("r2", 1)},
}


def secondary_metrics(model, frame: pd.DataFrame, features: list[str], target: str, task: str, predictions: np.ndarray) -> dict:
    """The task's ``SECONDARY`` metrics of ``predictions`` (the model's, for these rows); a metric
    these rows cannot give (ROC AUC on one class) is None."""
    out: dict[str, float | None] = {}
    for name, (scorer, sign) in SECONDARY[task].items():
        try:
            out[name] = sign * score(model, frame, features, target, scorer, predictions)
        except ValueError as err:
            log.info("%s not computed on %d rows: %s", name, len(frame), err)
            out[name] = None
    return out


def baseline_model(task: str):
    """The dummy every model must beat: the training rows' class prior (classification) or mean
    (regression), whatever the features say."""
    from sklearn.dummy import DummyClassifier, DummyRegressor

    return DummyClassifier(strategy="prior") if task == "classification" else DummyRegressor(strategy="mean")


def baseline_of(dummy, task: str) -> dict:
    """A fitted baseline as a record: its strategy and the one value it predicts."""
    if task == "classification":
        return {"strategy": "prior", "value": float(dummy.class_prior_[-1])}
    return {"strategy": "mean", "value": float(np.ravel(dummy.constant_)[0])}


def baseline_score(model, frame: pd.DataFrame, features: list[str], target: str, metric: str, baseline: dict) -> float:
    """The primary metric of a recorded baseline on ``frame`` (``model`` lends its classes): the
    constant ``baseline["value"]`` as every row's prediction, as the dummy itself predicts."""
    return score(model, frame, features, target, metric, np.full(len(frame), baseline["value"]))


def cross_validate(frame: pd.DataFrame, settings: Settings) -> tuple[CVResult, object]:
    """Time-based cross-validation of the configured pipeline on ``frame``.

    Args:
        frame: the training window's rows, with the target.
        settings: the full Settings.

    Returns:
        The per-fold result, and the model of the last fold (trained only on rows earlier than
        the last fold's validation rows), which promotion scores on those out-of-time rows.
    """
    cv, last_model, _ = _cross_validate(frame, settings, final_fit=False)
    return cv, last_model


def cross_validate_and_fit(frame: pd.DataFrame, settings: Settings) -> tuple[CVResult, object, object]:
    """``cross_validate`` and ``fit`` at once: the fit on the whole window is one more job in the
    same pool as the folds, so with ``training.n_jobs`` above 1 it runs beside them instead of
    after them on one core (at 1M rows and two at a time: the fit's 9 s overlap the folds).

    Returns:
        The per-fold result, the last fold's model, and the model fitted on every row.
    """
    return _cross_validate(frame, settings, final_fit=True)


def _cross_validate(frame: pd.DataFrame, settings: Settings, final_fit: bool) -> tuple[CVResult, object, object | None]:
    from joblib import Parallel, delayed

    folds = time_folds(frame[settings.data.timestamp], settings.training.folds)
    # ``training.n_jobs`` jobs at a time, in threads: they share ``frame`` (no copy per worker)
    # and the booster's Cython loops release the GIL. Folds alone: largest first, so the last to
    # start is a short one. With the fit on every row: it starts first, beside the folds from the
    # smallest up, so the largest jobs never run together (two at a time on 5 folds: the same
    # finish as largest-first, at most 1.5 windows of rows in flight instead of 1.8; the peak
    # memory follows). Scored in fold order either way.
    jobs = sorted(folds, key=lambda f: len(f.train_index) * (1 if final_fit else -1))
    work = [delayed(_run_fold)(frame, fold, settings) for fold in jobs]
    if final_fit:
        work.insert(0, delayed(fit)(frame, settings))
    done = Parallel(n_jobs=settings.training.n_jobs, prefer="threads")(work)
    model = done.pop(0) if final_fit else None
    by_fold = dict(zip((f.number for f in jobs), done, strict=True))
    last_model, scores, baseline = by_fold[folds[-1].number]
    oot, oot_all = np.full(len(frame), np.nan), np.full(len(frame), np.nan)
    oot[folds[-1].valid_index] = scores  # the last fold's
    for fold in folds:
        oot_all[fold.valid_index] = by_fold[fold.number][1]
    cv = CVResult(folds=folds, metric=settings.model.metric, oot=oot, oot_all=oot_all, baseline=baseline)
    return cv, last_model, model


def rows(frame: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
    """``frame.iloc[positions]``; a slice when the positions are one ascending run, as every fold's
    are on rows sorted by time (curated reads are): a slice shares the frame's memory, where
    ``iloc`` with positions copies every column (at 1M rows, about 200 MB per fold in flight)."""
    if len(positions) and bool(np.all(np.diff(positions) == 1)):
        return frame.iloc[int(positions[0]) : int(positions[-1]) + 1]
    return frame.iloc[positions]


def _run_fold(frame: pd.DataFrame, fold: Fold, settings: Settings) -> tuple[object, np.ndarray, dict]:
    """Fits a fold's model and its baseline on its training rows and scores its validation rows
    (sets ``fold.score``, ``fold.baseline`` and ``fold.metrics``).

    Returns:
        The fold's model, its scores of the validation rows, and the baseline's record.
    """
    data, model_cfg = settings.data, settings.model
    model = pipeline(settings)
    train = rows(frame, fold.train_index)
    model.fit(train[data.features], train[data.target])
    dummy = baseline_model(model_cfg.task).fit(train[data.features], train[data.target])
    del train
    valid = rows(frame, fold.valid_index)
    scores = predict(model, valid, data.features, model_cfg.task)
    try:
        fold.score = score(model, valid, data.features, data.target, model_cfg.metric, scores)
        fold.baseline = score(dummy, valid, data.features, data.target, model_cfg.metric)
    except ValueError as err:
        raise ValueError(f"fold {fold.number} ({fold.valid_start} to {fold.valid_end}): {err}") from None
    fold.metrics = secondary_metrics(model, valid, data.features, data.target, model_cfg.task, scores)
    log.info(
        "fold %d: %s = %.4f, baseline %.4f (%d train rows, %d validation rows)",
        fold.number,
        model_cfg.metric,
        fold.score,
        fold.baseline,
        len(fold.train_index),
        len(fold.valid_index),
    )
    return model, scores, baseline_of(dummy, model_cfg.task)


def fit(frame: pd.DataFrame, settings: Settings):
    """Fits the configured pipeline on every row of ``frame``."""
    data = settings.data
    return pipeline(settings).fit(frame[data.features], frame[data.target])


def predict(model, frame: pd.DataFrame, features: list[str], task: str) -> np.ndarray:
    """Scores rows: the probability of the positive class for classifiers, the value for regressors."""
    if task == "classification":
        return model.predict_proba(frame[features])[:, 1]
    return model.predict(frame[features])
