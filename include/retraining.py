"""Retrain: gate the training window, cross-validate and register a challenger, compare it with the
champion on the same out-of-time rows, and promote it when it is better.

Each function is what one task of the ``retrain`` DAG calls; each returns a small JSON-able dict.
"""

from __future__ import annotations

import json
import logging
from typing import TypedDict

import pandas as pd

from include import cards, charts, promotion, quality, registry, tracking, training
from include.config import Settings
from include.drift import plain_features
from include.errors import DataError
from include.labels import label_values, with_labels
from include.promotion import Comparison
from include.storage import Storage, Window

log = logging.getLogger(__name__)


class WindowGate(TypedDict):
    """What retrain's ``gate`` returns: the window passed."""

    rows: int
    checks: int
    learned_from: dict | None  # the champion's training window whose profile was applied
    warnings: list[str]


class TrainResult(TypedDict):
    """What retrain's ``train`` returns."""

    run_id: str
    version: int
    cv_mean: float | None
    baseline_cv_mean: float | None
    baseline: dict | None  # the last fold's dummy (``training.baseline_of``)
    valid_start: str  # where the comparison rows start
    reused: bool  # an earlier attempt of the same Airflow run registered it
    mlflow_url: str | None


def load_training_frame(settings: Settings, window: Window, curated: pd.DataFrame | None = None) -> pd.DataFrame:
    """Curated rows of the window with their labels; rows still without a label are left out.

    Args:
        settings: the full Settings.
        window: the span to read.
        curated: the window's curated rows when the caller has read them already.
    """
    data = settings.data
    storage = Storage.from_settings(settings)
    frame = with_labels(storage.read_curated(window) if curated is None else curated, data, settings.model.task)
    if frame.empty or data.target not in frame.columns:
        return frame
    labelled = frame[frame[data.target].notna()].reset_index(drop=True)
    if len(labelled) < len(frame):
        log.info("%d of %d rows have no label yet and are left out", len(frame) - len(labelled), len(frame))
    # nullable pandas dtypes as NumPy values: scikit-learn refuses pd.NA in numbers and encoders;
    # labels as the task's type (the curated table stores numbers as doubles: 1.0 is class 1)
    labelled = plain_features(labelled, data.numeric, data.categorical)
    where = "the training window's labelled rows"
    labelled[data.target] = label_values(labelled[data.target], settings.model.task, where, data.target, labelled[data.id], source=where)
    return labelled


def gate_window(settings: Settings, window: Window) -> WindowGate:
    """The gate on the training window (labels required), with the champion's learned tolerances.

    Raises:
        DataQualityError: the window's data fails the gate.
        DataError: fewer rows than ``training.min_rows``.
    """
    frame = load_training_frame(settings, window)
    learned = tracking.champion_profile(settings.name)
    report = quality.validate(frame, settings.data, window, learned, settings.quality, "retrain", require_target=True)
    if len(frame) < settings.training.min_rows:
        raise DataError(
            f"training window {window.as_dict()} has {len(frame)} labelled rows; training.min_rows is {settings.training.min_rows}"
        )
    return {"rows": len(frame), "checks": report["checks"], "learned_from": report["profile_window"], "warnings": report["warnings"]}


def train_challenger(settings: Settings, window: Window, reason: str, airflow_run_id: str, gate: WindowGate | None = None) -> TrainResult:
    """Time-based CV, a fit on the whole window, an MLflow run and a new version ``@challenger``.

    Re-running the same Airflow run returns the version it registered before instead of
    registering another.

    Returns:
        ``{"run_id", "version", "cv_mean", "baseline_cv_mean", "baseline", "valid_start", "reused",
        "mlflow_url"}``; ``baseline`` is the last fold's dummy (``training.baseline_of``).
    """
    metric = settings.model.metric
    found = tracking.find_training_run(settings.name, airflow_run_id)
    if found is not None and found["version"] is not None:
        run = found["run"]
        tracking.finish_registration(settings.name, found["version"], tracking.version_tags(run))
        if tracking.run_artifact_dict(found["run_id"], cards.FACTS_ARTIFACT) is None:  # the attempt died before its card
            tracking.write_card(tracking.card_facts(settings, found["version"], run))
        log.info("run %s already registered version %d; reusing it", found["run_id"], found["version"])
        baseline = run.data.tags.get("driftloop.baseline")
        return {
            "run_id": found["run_id"],
            "version": found["version"],
            "cv_mean": run.data.metrics.get(f"cv_{metric}_mean"),
            "baseline_cv_mean": run.data.metrics.get(f"baseline_cv_{metric}_mean"),
            "baseline": json.loads(baseline) if baseline else None,
            "valid_start": run.data.tags["driftloop.valid_start"],
            "reused": True,
            "mlflow_url": registry.run_url(found["run_id"]),
        }
    curated = Storage.from_settings(settings).read_curated(window)
    frame = load_training_frame(settings, window, curated)
    # the gate's learned tolerances describe every gated row of the window, labelled or not;
    # the rows themselves are let go before training (a million rows: about 250 MB)
    gate_profile = quality.profile(curated, settings.data, window)
    del curated
    cv, comparison_model, model = training.cross_validate_and_fit(frame, settings)
    span = f"window {window.start:%Y-%m-%d} to {window.end:%Y-%m-%d} ({reason})"
    figures = {"cv/folds.png": charts.fold_chart(cv.summary(), metric, f"{settings.name}: time-based CV, {span}")}
    if settings.model.task == "classification":
        title = f"{settings.name}: calibration of the folds' out-of-time scores, {span}"
        figures["cv/calibration.png"] = charts.calibration_chart(frame[settings.data.target], cv.oot_all, title)
    resume = found["run_id"] if found is not None else None  # an earlier attempt's run, nothing registered
    info = tracking.log_training_run(
        settings, window, reason, airflow_run_id, cv, model, comparison_model, frame, gate_profile, figures, resume, gate
    )
    tracking.write_card(tracking.card_facts(settings, info["version"], registry.client().get_run(info["run_id"])))
    url = registry.run_url(info["run_id"])
    log.info("MLflow run: %s", url or info["run_id"])
    return {
        **info,
        "cv_mean": cv.mean,
        "baseline_cv_mean": cv.baseline_mean,
        "baseline": cv.baseline,
        "valid_start": cv.folds[-1].valid_start.isoformat(),
        "reused": False,
        "mlflow_url": url,
    }


def evaluate_challenger(settings: Settings, window: Window, trained: TrainResult) -> Comparison:
    """Scores the challenger's last-fold model and ``@champion`` on the same out-of-time rows.

    Returns:
        The comparison: rows, both scores, the champion's version, ``better`` and the reason.
    """
    champion = registry.alias_version(settings.name, registry.CHAMPION)
    if champion is not None and champion.version == trained["version"]:
        return {
            "rows": 0,
            "challenger_score": None,
            "champion_score": None,
            "champion_version": champion.version,
            "better": True,
            "reason": "this version is already champion (re-run)",
            "mlflow_url": trained.get("mlflow_url"),
            "card": None,
        }
    rows = load_training_frame(settings, Window.parse(trained["valid_start"], window.end))
    challenger_model = registry.load_model(f"runs:/{trained['run_id']}/{tracking.COMPARISON_MODEL}")
    champion_model = registry.load_model(f"models:/{settings.name}/{champion.version}") if champion else None
    means = (trained["cv_mean"], trained["baseline_cv_mean"]) if trained.get("baseline_cv_mean") is not None else None
    try:
        result = promotion.compare(settings, rows, challenger_model, champion_model, champion, trained.get("baseline"), means)
    except promotion.PromotionRejected as err:
        result = promotion.Comparison(
            rows=0,
            rows_start=None,
            rows_end=None,
            challenger_score=None,
            champion_score=None,
            champion_version=champion.version,
            checks=[promotion.Check(check="champion", passed=False, detail=str(err))],
            better=False,
            reason=str(err),
        )
    if result["challenger_score"] is not None:
        tracking.log_comparison(trained["run_id"], settings.model.metric, result)
    card = tracking.update_card(settings, trained, comparison=result, decision=None)
    log.info("comparison: %s", result["reason"])
    return {**result, "mlflow_url": trained.get("mlflow_url"), "card": card}
