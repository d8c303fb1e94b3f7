"""Retrain: gate the training window, cross-validate and register a challenger, compare it with the
champion on the same out-of-time rows, and promote it when it is better.

Each function is what one task of the ``retrain`` DAG calls; each returns a small JSON-able dict.
"""

from __future__ import annotations

import logging
from typing import Literal, NotRequired, TypedDict

import pandas as pd

from include import charts, promotion, quality, registry, training
from include.drift import plain_features
from include.errors import DataError
from include.labels import label_values, with_labels
from include.monitoring import degradation, mark_demoted
from include.promotion import ChampionMoved, MovePlan, MoveResult, PromotionResult
from include.storage import Storage, Window

log = logging.getLogger(__name__)


# "from" is a Python keyword, hence the functional form
GuardResult = TypedDict(
    "GuardResult",
    {
        "degraded": bool,
        "rolled_back": bool,  # only when @champion moved back (now or in an earlier attempt)
        "champion": int | None,  # @champion after the guard
        "reason": str,
        "mlflow_url": str | None,
        "mode": NotRequired[Literal["auto", "manual", "stale"]],
        "from": NotRequired[int],  # a rollback: the demoted champion
        "evidence": NotRequired[list[str]],  # the intervals behind a degraded verdict (keys its alert)
    },
)
"""What monitor's ``guard`` found and did."""


def load_training_frame(settings, window: Window, curated: pd.DataFrame | None = None) -> pd.DataFrame:
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


def gate_window(settings, window: Window) -> dict:
    """The gate on the training window (labels required), with the champion's learned tolerances.

    Raises:
        DataQualityError: the window's data fails the gate.
        DataError: fewer rows than ``training.min_rows``.
    """
    frame = load_training_frame(settings, window)
    learned = registry.champion_profile(settings.name)
    report = quality.validate(frame, settings.data, window, learned, settings.quality, "retrain", require_target=True)
    if len(frame) < settings.training.min_rows:
        raise DataError(
            f"training window {window.as_dict()} has {len(frame)} labelled rows; training.min_rows is {settings.training.min_rows}"
        )
    return {"rows": len(frame), "checks": report["checks"]}


def train_challenger(settings, window: Window, reason: str, airflow_run_id: str) -> dict:
    """Time-based CV, a fit on the whole window, an MLflow run and a new version ``@challenger``.

    Re-running the same Airflow run returns the version it registered before instead of
    registering another.

    Returns:
        ``{"run_id", "version", "cv_mean", "valid_start", "reused"}``.
    """
    metric = settings.model.metric
    found = registry.find_training_run(settings.name, airflow_run_id)
    if found is not None and found["version"] is not None:
        run = found["run"]
        registry.finish_registration(settings.name, found["version"], registry.version_tags(run))
        log.info("run %s already registered version %d; reusing it", found["run_id"], found["version"])
        return {
            "run_id": found["run_id"],
            "version": found["version"],
            "cv_mean": run.data.metrics.get(f"cv_{metric}_mean"),
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
    png = charts.fold_chart(
        cv.summary(), metric, f"{settings.name}: time-based CV, window {window.start:%Y-%m-%d} to {window.end:%Y-%m-%d} ({reason})"
    )
    resume = found["run_id"] if found is not None else None  # an earlier attempt's run, nothing registered
    info = registry.log_training_run(
        settings, window, reason, airflow_run_id, cv, model, comparison_model, frame, gate_profile, png, resume
    )
    url = registry.run_url(info["run_id"])
    log.info("MLflow run: %s", url or info["run_id"])
    return {**info, "cv_mean": cv.mean, "valid_start": cv.folds[-1].valid_start.isoformat(), "reused": False, "mlflow_url": url}


def evaluate_challenger(settings, window: Window, trained: dict) -> dict:
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
        }
    rows = load_training_frame(settings, Window.parse(trained["valid_start"], window.end))
    challenger_model = registry.load_model(f"runs:/{trained['run_id']}/{registry.COMPARISON_MODEL}")
    champion_model = registry.load_model(f"models:/{settings.name}/{champion.version}") if champion else None
    try:
        result = promotion.compare(settings, rows, challenger_model, champion_model, champion)
    except promotion.PromotionRejected as err:
        result = {
            "rows": 0,
            "challenger_score": None,
            "champion_score": None,
            "champion_version": champion.version,
            "better": False,
            "reason": str(err),
        }
    if result["challenger_score"] is not None:
        registry.log_comparison(trained["run_id"], settings.model.metric, result)
    log.info("comparison: %s", result["reason"])
    return {**result, "mlflow_url": trained.get("mlflow_url")}


def promote(settings, trained: dict, comparison: dict, airflow_run_id: str) -> PromotionResult:
    """Moves ``@champion`` to the challenger when the comparison says it is better, and only while
    ``@champion`` is still the version it was compared with (``comparison["champion_version"]``).

    Done once per Airflow run: the plan is recorded first, so a retry after a crash completes it
    and a re-run of the task returns what the first run did.

    Returns:
        ``{"promoted", "champion", "reason", "mlflow_url"}`` (the champion version's page).

    Raises:
        ChampionMoved: ``@champion`` changed since the comparison (a promotion or rollback
            meanwhile, say during the approval wait): nothing moves.
    """
    name = settings.name
    done = registry.recorded_move(name, airflow_run_id)
    if done is None and not comparison["better"]:
        registry.client().set_model_version_tag(name, str(trained["version"]), "driftloop.decision", "rejected")
        done = registry.record_move(
            name, airflow_run_id, {"action": "keep", "champion": promotion.champion_now(name), "reason": comparison["reason"]}
        )
    if done is None:
        plan = promotion.plan_move(name, "promote", trained["version"], comparison["champion_version"], comparison["reason"])
        done = registry.record_move(name, airflow_run_id, plan)
    if "to" not in done:  # a decision to keep the champion (or a record from before move plans)
        result = PromotionResult(promoted=bool(done.get("promoted")), champion=done["champion"], reason=done["reason"], mlflow_url=None)
    else:
        plan: MovePlan = done

        def tag() -> None:
            registry.client().set_model_version_tag(name, str(plan["to"]), "driftloop.decision", "promoted")

        applied = promotion.carry_out(name, airflow_run_id, plan, then=tag)
        result = PromotionResult(promoted=True, champion=applied["to"], reason=applied["reason"], mlflow_url=None)
    return {**result, "mlflow_url": registry.version_url(name, result["champion"])}


def rollback(settings, version: int | None, airflow_run_id: str) -> MoveResult:
    """Points ``@champion`` back at the previous champion, or at ``version``; once per Airflow run
    (re-running the task does not step back a second time).

    Returns:
        The applied plan (``from``, ``to``, ``history``, ...) and the new champion's ``mlflow_url``.

    Raises:
        RegistryError: there is nothing to roll back to, or no such version.
        ChampionMoved: a recorded rollback of this run was not applied and ``@champion`` has
            moved since it was planned.
    """
    name = settings.name
    done = registry.recorded_move(name, airflow_run_id)
    if done is None:
        target, history = registry.rollback_plan(name, version)
        why = f"rollback to v{target}" + (" (requested)" if version is not None else " (the previous champion)")
        plan = promotion.plan_move(name, "rollback", target, promotion.champion_now(name), why, history)
        done = registry.record_move(name, airflow_run_id, plan)
    applied = promotion.carry_out(name, airflow_run_id, done)
    return {**applied, "mlflow_url": registry.version_url(name, applied["to"])}


def guard_champion(settings, airflow_run_id: str) -> GuardResult:
    """The automatic rollback: after each monitor run, checks whether ``@champion`` has trailed its
    shadow (the previous champion) on the live metric (see ``monitoring.degradation``).

    With ``monitoring.rollback: auto`` a degraded champion is rolled back to the shadow, the demoted
    version is tagged ``driftloop.demoted`` with the reason, and the verdicts that showed it are
    marked so they never count again; with ``manual`` the evidence is only reported. Once per
    Airflow run, like any alias move; a recorded rollback that ``@champion`` has since moved away
    from is reported, not applied (``mode: stale``).

    Returns:
        A ``GuardResult``; a degraded champion also has ``evidence`` (the intervals behind it),
        which keys its alert.
    """
    name = settings.name
    planned = registry.recorded_move(name, airflow_run_id)
    if planned is not None:  # a retry or a re-run: finish what was planned, if it still stands
        return _apply_rollback(settings, planned, airflow_run_id)
    champion = registry.alias_version(name, registry.CHAMPION)
    if champion is None:
        return GuardResult(degraded=False, rolled_back=False, champion=None, reason="no champion", mlflow_url=None)
    mon = settings.monitoring
    verdicts = Storage.from_settings(settings).verdicts()
    evidence = degradation(verdicts, champion.version, mon.rollback_margin, mon.rollback_intervals, settings.promotion.min_rows)
    if evidence is None:
        reason = f"champion v{champion.version} does not trail a shadow in the last {mon.rollback_intervals} labelled intervals"
        return GuardResult(degraded=False, rolled_back=False, champion=champion.version, reason=reason, mlflow_url=None)
    held = GuardResult(
        degraded=True,
        rolled_back=False,
        champion=champion.version,
        reason=evidence["reason"],
        mlflow_url=None,
        evidence=evidence["verdicts"],
    )
    if mon.rollback == "manual":
        log.warning("%s; monitoring.rollback is manual: run the rollback DAG to act on it", evidence["reason"])
        return {**held, "mode": "manual"}
    target, history = registry.rollback_plan(name, None)
    if target != evidence["shadow"]:
        # the champion history moved since the verdicts were written (a promote or a rollback in
        # another DAG): do nothing on stale evidence
        reason = f"{evidence['reason']}; not rolled back: @champion or its history changed meanwhile (previous champion now v{target})"
        log.warning(reason)
        return {**held, "mode": "stale", "reason": reason}
    plan = promotion.plan_move(name, "rollback", target, champion.version, evidence["reason"], history)
    plan["verdicts"] = evidence["verdicts"]
    return _apply_rollback(settings, registry.record_move(name, airflow_run_id, plan), airflow_run_id)


def _apply_rollback(settings, plan: MovePlan, airflow_run_id: str) -> GuardResult:
    """Carries out a guard's recorded rollback; the result says ``rolled_back`` only once it is
    applied (now or by an earlier attempt)."""
    name = settings.name

    def demote() -> None:
        registry.client().set_model_version_tag(name, str(plan["from"]), "driftloop.demoted", plan["reason"])
        mark_demoted(settings, plan["verdicts"], airflow_run_id)
        log.warning("rolled back: %s", plan["reason"])

    try:
        applied = promotion.carry_out(name, airflow_run_id, plan, then=demote)
    except ChampionMoved as err:  # someone moved @champion since the plan: their move stands
        log.warning("%s", err)
        now = promotion.champion_now(name)
        return GuardResult(
            degraded=True,
            rolled_back=False,
            champion=now,
            reason=f"{plan['reason']}; not rolled back: {err}",
            mlflow_url=None,
            mode="stale",
            evidence=plan["verdicts"],
        )
    return GuardResult(
        degraded=True,
        rolled_back=True,
        champion=applied["to"],
        reason=applied["reason"],
        mlflow_url=registry.version_url(name, applied["to"]),
        mode="auto",
        evidence=applied["verdicts"],
        **{"from": applied["from"]},
    )
