"""Retrain: gate the training window, cross-validate and register a challenger, compare it with the
champion on the same out-of-time rows, and promote it when it is better.

Each function is what one task of the ``retrain`` DAG calls; each returns a small JSON-able dict.
"""

from __future__ import annotations

import logging

import pandas as pd

from include import charts, promotion, quality, registry, training
from include.monitoring import degradation, mark_demoted, with_labels
from include.storage import Storage, Window

log = logging.getLogger(__name__)


def training_window(end: str, length) -> Window:
    """The window ``[end - length, end)``."""
    stop = Window.parse(end, pd.Timestamp(end) + pd.Timedelta(seconds=1)).start
    return Window(stop - length, stop)


def load_training_frame(settings, window: Window, curated: pd.DataFrame | None = None) -> pd.DataFrame:
    """Curated rows of the window with their labels; rows still without a label are left out.

    Args:
        settings: the full Settings.
        window: the span to read.
        curated: the window's curated rows when the caller has read them already.
    """
    data = settings.data
    storage = Storage.from_settings(settings)
    frame = with_labels(storage.read_curated(window) if curated is None else curated, storage, data)
    if frame.empty or data.target not in frame.columns:
        return frame
    labelled = frame[frame[data.target].notna()].reset_index(drop=True)
    if len(labelled) < len(frame):
        log.info("%d of %d rows have no label yet and are left out", len(frame) - len(labelled), len(frame))
    return labelled


def gate_window(settings, window: Window) -> dict:
    """The gate on the training window (labels required), with the champion's learned tolerances.

    Raises:
        DataQualityError: the window's data fails the gate.
        ValueError: fewer rows than ``training.min_rows``.
    """
    frame = load_training_frame(settings, window)
    learned = registry.champion_profile(settings.name)
    report = quality.validate(frame, settings.data, window, learned, settings.quality, "retrain", require_target=True)
    if len(frame) < settings.training.min_rows:
        raise ValueError(
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
    if found is not None:
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
    cv, comparison_model = training.cross_validate(frame, settings)
    model = training.fit(frame, settings)
    # the gate's learned tolerances describe every gated row of the window, labelled or not
    gate_profile = quality.profile(curated, settings.data, window)
    png = charts.fold_chart(
        cv.summary(), metric, f"{settings.name}: time-based CV, window {window.start:%Y-%m-%d} to {window.end:%Y-%m-%d} ({reason})"
    )
    info = registry.log_training_run(settings, window, reason, airflow_run_id, cv, model, comparison_model, frame, gate_profile, png)
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


def promote(settings, trained: dict, comparison: dict, airflow_run_id: str) -> dict:
    """Moves ``@champion`` to the challenger when the comparison says it is better.

    Done once per Airflow run: a re-run of the task returns what the first run did.

    Returns:
        ``{"promoted", "champion", "reason", "mlflow_url"}`` (the champion version's page).
    """
    done = registry.recorded_move(settings.name, airflow_run_id)
    if done is None:
        done = _move_alias(settings, trained, comparison, airflow_run_id)
    return {**done, "mlflow_url": registry.version_url(settings.name, done["champion"])}


def _move_alias(settings, trained: dict, comparison: dict, airflow_run_id: str) -> dict:
    c = registry.client()
    if comparison["better"]:
        registry.set_champion(settings.name, trained["version"])
        c.set_model_version_tag(settings.name, str(trained["version"]), "driftloop.decision", "promoted")
        result = {"promoted": True, "champion": trained["version"], "reason": comparison["reason"]}
    else:
        current = registry.alias_version(settings.name, registry.CHAMPION)
        c.set_model_version_tag(settings.name, str(trained["version"]), "driftloop.decision", "rejected")
        result = {"promoted": False, "champion": current.version if current else None, "reason": comparison["reason"]}
    return registry.record_move(settings.name, airflow_run_id, result)


def rollback(settings, version: int | None, airflow_run_id: str) -> dict:
    """Points ``@champion`` back at the previous champion, or at ``version``; once per Airflow run
    (re-running the task does not step back a second time).

    Raises:
        ValueError: there is nothing to roll back to.
    """
    done = registry.recorded_move(settings.name, airflow_run_id)
    if done is None:
        before = registry.alias_version(settings.name, registry.CHAMPION)
        target, history = registry.rollback_plan(settings.name, version)
        done = registry.record_move(
            settings.name, airflow_run_id, {"from": before.version if before else None, "to": target, "history": history}
        )
    done = _carry_out(settings, airflow_run_id, done, done["to"])
    return {**done, "mlflow_url": registry.version_url(settings.name, done["to"])}


def _carry_out(settings, airflow_run_id: str, plan: dict, to: int, then=None) -> dict:
    """Applies a recorded plan to move ``@champion`` from ``plan["from"]`` to ``to`` (with
    ``plan["history"]``), runs ``then()`` and records the plan as ``applied``.

    Plans are recorded before they are applied, so a retry after a crash half-way completes the
    move (each step is idempotent). An applied plan is never applied again: a run cleared long
    after, when someone may have moved the champion on or back, only returns its record. Nor is a
    plan applied once ``@champion`` has left ``plan["from"]`` for another version meanwhile.
    """
    if plan.get("applied"):
        return plan
    current = registry.alias_version(settings.name, registry.CHAMPION)
    now = current.version if current else None
    if now not in (plan["from"], to):
        log.warning("recorded move v%s -> v%s not applied: @champion is v%s now", plan["from"], to, now)
        return plan
    registry.set_champion(settings.name, to, plan["history"])
    if then is not None:
        then()
    return registry.record_move(settings.name, airflow_run_id, {**plan, "applied": True})


def guard_champion(settings, airflow_run_id: str) -> dict:
    """The automatic rollback: after each monitor run, checks whether ``@champion`` has trailed its
    shadow (the previous champion) on the live metric (see ``monitoring.degradation``).

    With ``monitoring.rollback: auto`` a degraded champion is rolled back to the shadow, the demoted
    version is tagged ``driftloop.demoted`` with the reason, and the verdicts that showed it are
    marked so they never count again; with ``manual`` the evidence is only reported. Once per
    Airflow run, like any alias move.

    Returns:
        ``{"degraded", "rolled_back", "champion", "reason", "mlflow_url"}``; a degraded champion
        also has ``evidence`` (the intervals behind it), which keys its alert.
    """
    planned = registry.recorded_move(settings.name, airflow_run_id)
    if planned is not None:  # a retry or a re-run: finish what was planned, if it still stands
        return _apply_rollback(settings, planned, airflow_run_id)
    champion = registry.alias_version(settings.name, registry.CHAMPION)
    if champion is None:
        return {"degraded": False, "rolled_back": False, "champion": None, "reason": "no champion", "mlflow_url": None}
    mon = settings.monitoring
    verdicts = Storage.from_settings(settings).verdicts()
    evidence = degradation(verdicts, champion.version, mon.rollback_margin, mon.rollback_intervals, settings.promotion.min_rows)
    if evidence is None:
        reason = f"champion v{champion.version} does not trail a shadow in the last {mon.rollback_intervals} labelled intervals"
        return {"degraded": False, "rolled_back": False, "champion": champion.version, "reason": reason, "mlflow_url": None}
    held = {"degraded": True, "rolled_back": False, "champion": champion.version, "evidence": evidence["verdicts"], "mlflow_url": None}
    if mon.rollback == "manual":
        log.warning("%s; monitoring.rollback is manual: run the rollback DAG to act on it", evidence["reason"])
        return {**held, "mode": "manual", "reason": evidence["reason"]}
    target, history = registry.rollback_plan(settings.name, None)
    if target != evidence["shadow"]:
        # the champion history moved since the verdicts were written (a promote or a rollback in
        # another DAG): do nothing on stale evidence
        reason = f"{evidence['reason']}; not rolled back: @champion or its history changed meanwhile (previous champion now v{target})"
        log.warning(reason)
        return {**held, "mode": "stale", "reason": reason}
    planned = registry.record_move(
        settings.name,
        airflow_run_id,
        {
            "degraded": True,
            "rolled_back": True,
            "from": champion.version,
            "champion": target,
            "history": history,
            "verdicts": evidence["verdicts"],
            "reason": evidence["reason"],
        },
    )
    return _apply_rollback(settings, planned, airflow_run_id)


def _apply_rollback(settings, planned: dict, airflow_run_id: str) -> dict:
    if planned.get("rolled_back"):

        def demote() -> None:
            registry.client().set_model_version_tag(settings.name, str(planned["from"]), "driftloop.demoted", planned["reason"])
            mark_demoted(settings, planned["verdicts"], airflow_run_id)
            log.warning("rolled back: %s", planned["reason"])

        planned = _carry_out(settings, airflow_run_id, planned, planned["champion"], then=demote)
    return {**planned, "mlflow_url": registry.version_url(settings.name, planned["champion"])}
