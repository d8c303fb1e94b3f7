"""Retrain: gate the training window, cross-validate and register a challenger, compare it with the
champion on the same out-of-time rows, and promote it when it is better.

Each function is what one task of the ``retrain`` DAG calls; each returns a small JSON-able dict.
"""

from __future__ import annotations

import json
import logging
from typing import Literal, NotRequired, TypedDict

import pandas as pd

from include import cards, charts, promotion, quality, registry, rollout, training
from include.config import Settings
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
    return {"rows": len(frame), "checks": report["checks"], "learned_from": report["profile_window"], "warnings": report["warnings"]}


def train_challenger(settings: Settings, window: Window, reason: str, airflow_run_id: str, gate: dict | None = None) -> dict:
    """Time-based CV, a fit on the whole window, an MLflow run and a new version ``@challenger``.

    Re-running the same Airflow run returns the version it registered before instead of
    registering another.

    Returns:
        ``{"run_id", "version", "cv_mean", "baseline_cv_mean", "baseline", "valid_start", "reused",
        "mlflow_url"}``; ``baseline`` is the last fold's dummy (``training.baseline_of``).
    """
    metric = settings.model.metric
    found = registry.find_training_run(settings.name, airflow_run_id)
    if found is not None and found["version"] is not None:
        run = found["run"]
        registry.finish_registration(settings.name, found["version"], registry.version_tags(run))
        if registry.run_artifact_dict(found["run_id"], cards.FACTS_ARTIFACT) is None:  # the attempt died before its card
            registry.write_card(card_facts(settings, found["version"], run))
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
    info = registry.log_training_run(
        settings, window, reason, airflow_run_id, cv, model, comparison_model, frame, gate_profile, figures, resume, gate
    )
    registry.write_card(card_facts(settings, info["version"], registry.client().get_run(info["run_id"])))
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


def card_facts(settings: Settings, version: int, run) -> cards.CardFacts:
    """A new version's card facts, read back from its training run (what an auditor can read too)."""
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    metric = settings.model.metric
    baseline = tags.get("driftloop.baseline")
    return cards.CardFacts(
        name=settings.name,
        version=version,
        run_id=run.info.run_id,
        run_url=registry.run_url(run.info.run_id),
        task=params.get("task", settings.model.task),
        metric=metric,
        estimator=params.get("estimator", settings.model.estimator),
        params={k.removeprefix("model."): v for k, v in params.items() if k.startswith("model.")},
        # a version registered outside driftloop has none of its tags: its card says what is known
        window_start=tags.get("driftloop.window_start", "unknown"),
        window_end=tags.get("driftloop.window_end", "unknown"),
        rows=int(params.get("rows", 0)),
        reason=tags.get("driftloop.reason", "unknown"),
        trigger=retrain_trigger(settings, tags.get("driftloop.airflow_run_id", "")),
        airflow_run_id=tags.get("driftloop.airflow_run_id", ""),
        data_digest=tags.get("driftloop.data_digest", "unknown"),
        config_digest=tags.get("driftloop.config_digest", "unknown"),
        code_version=tags.get("driftloop.code_version", "unknown"),
        gate=registry.run_artifact_dict(run.info.run_id, "gate/summary.json"),
        folds=registry.run_artifact_dict(run.info.run_id, "cv/folds.json") or [],
        cv_mean=metrics.get(f"cv_{metric}_mean"),
        baseline=json.loads(baseline) if baseline else None,
        baseline_cv_mean=metrics.get(f"baseline_cv_{metric}_mean"),
        decision=None,
    )


def retrain_trigger(settings: Settings, airflow_run_id: str) -> str | None:
    """In words, what started a drift retrain: the drifted intervals drift_watch answered with it
    (None for other retrains, or before drift_watch recorded them)."""
    from include.monitoring import drift_state

    verdicts, triggers = drift_state(settings)
    for trigger in triggers:
        if trigger["retrain_run_id"] == airflow_run_id:
            shares = {Window.parse(v["start"], v["end"]).key: v["drift_share"] for v in verdicts}
            said = [f"{key} (drift share {shares[key]:.2f})" if key in shares else key for key in trigger["verdicts"]]
            return "drifted intervals " + ", ".join(said)
    return None


def _update_card(settings: Settings, trained: dict, **facts) -> None:
    """Adds ``facts`` (comparison, decision) to the version's card and writes it again."""
    run_id = trained.get("run_id") or registry.get_version(settings.name, trained["version"]).run_id
    stored = registry.run_artifact_dict(run_id, cards.FACTS_ARTIFACT)
    if stored is None:
        stored = card_facts(settings, trained["version"], registry.client().get_run(run_id))
    registry.write_card({**stored, **facts})


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
        registry.log_comparison(trained["run_id"], settings.model.metric, result)
    _update_card(settings, trained, comparison=result, decision=None)
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
    refused_by = [c["check"] for c in comparison.get("checks", []) if not c["passed"] and c["check"] in promotion.GATES]
    if done is None and not comparison["better"]:
        registry.client().set_model_version_tag(name, str(trained["version"]), "driftloop.decision", "rejected")
        keep = {"action": "keep", "champion": promotion.champion_now(name), "reason": comparison["reason"], "refused_by": refused_by}
        done = registry.record_move(name, airflow_run_id, keep)
    strategy = settings.promotion.strategy
    if done is None and strategy != "direct" and comparison["champion_version"] is not None:
        how = "better on" if strategy == "shadow" else f"not worse, serving {settings.promotion.canary_share:.0%} of the rows, on"
        staged = {
            "action": "rollout",
            "strategy": strategy,
            "candidate": trained["version"],
            "champion": comparison["champion_version"],
            "reason": f"{comparison['reason']}; under {strategy} rollout: promoted once {how} {settings.promotion.min_rows} labelled live rows",
        }
        done = registry.record_move(name, airflow_run_id, staged)
    if done is None:
        plan = promotion.plan_move(name, "promote", trained["version"], comparison["champion_version"], comparison["reason"])
        done = registry.record_move(name, airflow_run_id, plan)
    if done.get("action") == "rollout":
        begin_rollout(settings, done, airflow_run_id)
        result = PromotionResult(
            promoted=False,
            champion=done["champion"],
            reason=done["reason"],
            mlflow_url=None,
            challenger=trained["version"],
            rollout=done["strategy"],
        )
    elif "to" not in done:  # a decision to keep the champion (or a record from before move plans)
        result = PromotionResult(
            promoted=bool(done.get("promoted")),
            champion=done["champion"],
            reason=done["reason"],
            mlflow_url=None,
            refused_by=done.get("refused_by", []),
            challenger=trained["version"],
        )
    else:
        plan: MovePlan = done

        def tag() -> None:
            registry.client().set_model_version_tag(name, str(plan["to"]), "driftloop.decision", "promoted")

        applied = promotion.carry_out(name, airflow_run_id, plan, then=tag)
        result = PromotionResult(
            promoted=True, champion=applied["to"], reason=applied["reason"], mlflow_url=None, challenger=trained["version"]
        )
    before = comparison.get("champion_version") if result["promoted"] else result["champion"]
    state = (
        "promoted" if result["promoted"] else ("rollout" if result.get("rollout") else "refused" if result.get("refused_by") else "kept")
    )
    decision = cards.Decision(state=state, reason=result["reason"], champion_before=before, refused_by=result.get("refused_by", []))
    _update_card(settings, trained, decision=decision)
    return {**result, "mlflow_url": registry.version_url(name, result["champion"])}


def begin_rollout(settings: Settings, staged: dict, airflow_run_id: str) -> None:
    """Puts a better challenger under rollout (``include.rollout``): ``@candidate`` and the
    rollout record; a rollout still running for another version is ended (retired, replaced).
    Idempotent: a retry sets the same alias and record."""
    name, version = settings.name, staged["candidate"]
    running = registry.rollout_record(name)
    if running is not None and running["version"] != version:
        registry.end_rollout(name, running["version"], "retired", f"replaced by v{version}")
        _update_card(settings, {"version": running["version"]}, decision=_retired(f"replaced by v{version}", running["champion"]))
    record = rollout.Rollout(
        version=version,
        strategy=staged["strategy"],
        share=settings.promotion.canary_share if staged["strategy"] == "canary" else 0.0,
        since=registry.get_version(name, version).window_end,
        champion=staged["champion"],
        started_by=airflow_run_id,
    )
    registry.start_rollout(name, record)


def _retired(reason: str, champion: int | None) -> cards.Decision:
    return cards.Decision(state="retired", reason=reason, champion_before=champion, refused_by=["rollout"])


def rollout_evidence(settings: Settings, running: rollout.Rollout) -> tuple[rollout.RolloutEvidence, object, object]:
    """The live rows a rollout is judged on so far, from the stored predictions and the labels
    known now (labels that came after an interval was monitored count): every monitored interval
    the candidate took part in, rows from ``running["since"]`` on. Returns the evidence and the
    two models (champion, candidate)."""
    from include.monitoring import labelled_rows, live_metric
    from include.storage import to_utc

    storage = Storage.from_settings(settings)
    data, since = settings.data, to_utc(running["since"])
    parts, intervals = [], []
    for verdict in storage.verdicts():
        if (verdict.get("rollout") or {}).get("version") != running["version"] or to_utc(verdict["end"]) <= since:
            continue
        window = Window.parse(verdict["start"], verdict["end"])
        scores = storage.read_parquet(storage.predictions_path(window))[[data.id, "role", "champion_prediction", "candidate_prediction"]]
        labelled = labelled_rows(storage.read_curated(window), settings)
        joined = labelled.merge(scores, on=data.id, how="inner")
        parts.append(joined[joined[data.timestamp] >= since])
        intervals.append(window.key)
    rows = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    champion_model = registry.load_model(f"models:/{settings.name}/{running['champion']}")
    candidate_model = registry.load_model(f"models:/{settings.name}/{running['version']}")
    if rows.empty:
        return (
            rollout.RolloutEvidence(rows=0, champion_rows=0, candidate_metric=None, champion_metric=None, intervals=intervals),
            None,
            None,
        )
    mine = rows["role"] == "canary" if running["strategy"] == "canary" else pd.Series(True, index=rows.index)
    theirs = rows["role"] == "champion" if running["strategy"] == "canary" else mine
    evidence = rollout.RolloutEvidence(
        rows=int(mine.sum()),
        champion_rows=int(theirs.sum()),
        candidate_metric=live_metric(candidate_model, rows[mine], settings, rows.loc[mine, "candidate_prediction"].to_numpy()),
        champion_metric=live_metric(champion_model, rows[theirs], settings, rows.loc[theirs, "champion_prediction"].to_numpy()),
        intervals=intervals,
    )
    return evidence, champion_model, candidate_model


def rollout_step(settings: Settings, airflow_run_id: str) -> dict:
    """monitor's ``rollout`` task: promotes or retires the candidate once the live rows decide
    (``include.rollout.decide``), once per Airflow run; the move is recorded before it is made,
    like every move of ``@champion``.

    Returns:
        Nothing to tell (``{"rollout": None | version, "action": "wait", "reason"}``), or a
        ``PromotionResult``: promoted, or refused by the ``rollout`` check (retired).
    """
    name = settings.name
    key = f"{airflow_run_id}__rollout"
    done = registry.recorded_move(name, key)
    if done is None:
        running = registry.rollout_record(name)
        if running is None:
            return {"rollout": None, "action": "wait", "reason": "no rollout running"}
        champion = promotion.champion_now(name)
        if champion != running["champion"]:
            reason = (
                f"@champion moved to v{champion} during the rollout, which measured v{running['version']} against v{running['champion']}"
            )
            decision = rollout.RolloutDecision(action="retire", reason=reason)
        else:
            evidence, _, _ = rollout_evidence(settings, running)
            mon = settings.promotion
            decision = rollout.decide(running, evidence, settings.model.metric, mon.min_rows, mon.min_improvement)
        log.info("rollout: %s", decision["reason"])
        if decision["action"] == "wait":
            return {"rollout": running["version"], "action": "wait", "reason": decision["reason"]}
        if decision["action"] == "promote":
            done = promotion.plan_move(name, "promote", running["version"], running["champion"], decision["reason"])
        else:
            done = {"action": "retire", "candidate": running["version"], "champion": champion, "reason": decision["reason"]}
        done = registry.record_move(name, key, done)
    if done["action"] == "retire":
        registry.end_rollout(name, done["candidate"], "retired", done["reason"])
        _update_card(settings, {"version": done["candidate"]}, decision=_retired(done["reason"], done["champion"]))
        result = PromotionResult(
            promoted=False,
            champion=done["champion"],
            reason=done["reason"],
            mlflow_url=None,
            refused_by=["rollout"],
            challenger=done["candidate"],
        )
    else:
        plan: MovePlan = done

        def finish() -> None:
            registry.client().set_model_version_tag(name, str(plan["to"]), "driftloop.decision", "promoted")
            registry.end_rollout(name, plan["to"], "promoted", plan["reason"])

        applied = promotion.carry_out(name, key, plan, then=finish)
        decision = cards.Decision(state="promoted", reason=applied["reason"], champion_before=applied["from"], refused_by=[])
        _update_card(settings, {"version": applied["to"]}, decision=decision)
        result = PromotionResult(promoted=True, champion=applied["to"], reason=applied["reason"], mlflow_url=None, challenger=applied["to"])
    return {**result, "mlflow_url": registry.version_url(name, result["champion"])}


def retain(settings: Settings, when: str) -> dict:
    """Archives registered versions beyond ``registry.keep`` (``registry.archive_versions``); the
    champion, the previous champion and a version under rollout (``@candidate``) are never archived.

    Args:
        when: the run's time, written into the archive tag.

    Returns:
        ``{"archived": [versions], "keep"}``.
    """
    name = settings.name
    if not registry.model_exists(name):
        return {"archived": [], "keep": settings.registry.keep}
    protected = set()
    champion = registry.alias_version(name, registry.CHAMPION)
    if champion is not None:
        protected.add(champion.version)
        previous = registry.previous_champion(name, champion.version)
        if previous is not None:
            protected.add(previous)
    archived = registry.archive_versions(name, settings.registry.keep, protected, when)
    return {"archived": archived, "keep": settings.registry.keep}


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
