"""Pure training logic: the model pipeline and time-based cross-validation.

Nothing here touches storage or MLflow. Functions take frames and settings and return estimators,
scores and row indices, never changing their inputs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from include import estimators

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

    @property
    def scores(self) -> list[float]:
        return [f.score for f in self.folds]

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores))

    @property
    def std(self) -> float:
        return float(np.std(self.scores))

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


def pipeline(settings):
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


def cross_validate(frame: pd.DataFrame, settings) -> tuple[CVResult, object]:
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


def cross_validate_and_fit(frame: pd.DataFrame, settings) -> tuple[CVResult, object, object]:
    """``cross_validate`` and ``fit`` at once: the fit on the whole window is one more job in the
    same pool as the folds, so with ``training.n_jobs`` above 1 it runs beside them instead of
    after them on one core (at 1M rows and two at a time: the fit's 9 s overlap the folds).

    Returns:
        The per-fold result, the last fold's model, and the model fitted on every row.
    """
    return _cross_validate(frame, settings, final_fit=True)


def _cross_validate(frame: pd.DataFrame, settings, final_fit: bool) -> tuple[CVResult, object, object | None]:
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
    last_model, scores = dict(zip((f.number for f in jobs), done, strict=True))[folds[-1].number]
    oot = np.full(len(frame), np.nan)
    oot[folds[-1].valid_index] = scores  # the last fold's
    return CVResult(folds=folds, metric=settings.model.metric, oot=oot), last_model, model


def rows(frame: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
    """``frame.iloc[positions]``; a slice when the positions are one ascending run, as every fold's
    are on rows sorted by time (curated reads are): a slice shares the frame's memory, where
    ``iloc`` with positions copies every column (at 1M rows, about 200 MB per fold in flight)."""
    if len(positions) and bool(np.all(np.diff(positions) == 1)):
        return frame.iloc[int(positions[0]) : int(positions[-1]) + 1]
    return frame.iloc[positions]


def _run_fold(frame: pd.DataFrame, fold: Fold, settings) -> tuple[object, np.ndarray]:
    """Fits a fold's model on its training rows and scores its validation rows (sets ``fold.score``)."""
    data, model_cfg = settings.data, settings.model
    model = pipeline(settings)
    train = rows(frame, fold.train_index)
    model.fit(train[data.features], train[data.target])
    del train
    valid = rows(frame, fold.valid_index)
    scores = predict(model, valid, data.features, model_cfg.task)
    try:
        fold.score = score(model, valid, data.features, data.target, model_cfg.metric, scores)
    except ValueError as err:
        raise ValueError(f"fold {fold.number} ({fold.valid_start} to {fold.valid_end}): {err}") from None
    log.info(
        "fold %d: %s = %.4f (%d train rows, %d validation rows)",
        fold.number,
        model_cfg.metric,
        fold.score,
        len(fold.train_index),
        len(fold.valid_index),
    )
    return model, scores


def fit(frame: pd.DataFrame, settings):
    """Fits the configured pipeline on every row of ``frame``."""
    data = settings.data
    return pipeline(settings).fit(frame[data.features], frame[data.target])


def predict(model, frame: pd.DataFrame, features: list[str], task: str) -> np.ndarray:
    """Scores rows: the probability of the positive class for classifiers, the value for regressors."""
    if task == "classification":
        return model.predict_proba(frame[features])[:, 1]
    return model.predict(frame[features])
