"""Staged rollout (``promotion.strategy``): a challenger that wins offline goes live in steps.

- ``direct`` (default): ``@champion`` moves at once.
- ``shadow``: the challenger becomes ``@candidate`` and scores every monitored interval beside the
  champion (``candidate_prediction`` in the predictions); it is promoted once, on at least
  ``promotion.min_rows`` labelled live rows, it beats the champion on the same rows by more than
  ``promotion.min_improvement``; otherwise it is retired.
- ``canary``: ``@candidate`` serves a deterministic share (``promotion.canary_share``, by a hash
  of the row id: an id is always on the same side) of each interval (``role: canary`` in the
  predictions, its score as the row's ``prediction``); once it has served ``promotion.min_rows``
  labelled rows, it is promoted when its live metric on them is not worse than the champion's on
  the rows the champion served, else retired.

Live rows count only after the candidate's training window (no model is judged on rows it
trained on). The rollout is a registered-model tag (``driftloop.rollout``) plus the alias
``@candidate``; monitor's ``rollout`` task decides, in the registry pool, once per Airflow run.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Literal, NotRequired, TypedDict

import numpy as np
import pandas as pd

from include import cards, registry
from include.champion import (
    MovePlan,
    carry_out,
    champion_now,
    end_rollout,
    plan_move,
    record_move,
    recorded_move,
    rollout_record,
    start_rollout,
)
from include.promotion import PromotionResult, decided
from include.storage import Storage, Window
from include.tracking import update_card

if TYPE_CHECKING:
    from include.config import Settings

log = logging.getLogger(__name__)

SCALE = 10_000  # canary shares are resolved to 1/10,000


class Rollout(TypedDict):
    """A running rollout, as the registered model's tag holds it."""

    version: int
    strategy: Literal["shadow", "canary"]
    share: float  # canary: the share of rows it serves
    since: str  # live rows count from here: the end of the candidate's training window
    champion: int | None  # the champion it is measured against
    started_by: str  # the retrain run that started it


class RolloutEvidence(TypedDict):
    """What the live rows say so far."""

    rows: int  # the candidate's labelled rows (canary: the rows it served)
    champion_rows: int  # the champion's (shadow: the same rows)
    candidate_metric: float | None
    champion_metric: float | None
    intervals: list[str]


class RolloutDecision(TypedDict):
    action: Literal["wait", "promote", "retire"]
    reason: str
    evidence: NotRequired[RolloutEvidence]


class RolloutWait(TypedDict):
    """monitor's ``rollout`` when the live rows do not decide yet (or nothing is under rollout)."""

    kind: Literal["rollout"]
    rollout: int | None  # the candidate, if any
    action: Literal["wait"]
    reason: str


def in_canary(ids: pd.Series, share: float) -> np.ndarray:
    """Which rows the canary serves: those whose id hashes (SHA-1 of its text) below ``share``.
    Deterministic across processes and runs, unlike Python's ``hash``."""
    cut = round(share * SCALE)
    buckets = np.fromiter(
        (int.from_bytes(hashlib.sha1(str(i).encode()).digest()[:4], "big") % SCALE for i in ids), dtype=np.int64, count=len(ids)
    )
    return buckets < cut


def decide(rollout: Rollout, evidence: RolloutEvidence, metric: str, min_rows: int, min_improvement: float) -> RolloutDecision:
    """Promote, retire or wait, from the live evidence (pure)."""
    v, strategy = rollout["version"], rollout["strategy"]
    mine, theirs = evidence["candidate_metric"], evidence["champion_metric"]
    enough = evidence["rows"] >= min_rows and evidence["champion_rows"] >= min_rows
    if not enough or mine is None or theirs is None:
        return RolloutDecision(
            action="wait",
            reason=f"{strategy} v{v}: {evidence['rows']} of {min_rows} labelled live rows so far (champion: {evidence['champion_rows']})",
            evidence=evidence,
        )
    numbers = f"live {metric} {mine:.4f} against champion v{rollout['champion']}'s {theirs:.4f}"
    if strategy == "shadow":
        rows = f"on the same {evidence['rows']} labelled rows"
        if mine - theirs > min_improvement:
            return RolloutDecision(
                action="promote", reason=f"shadow v{v} is better: {numbers} {rows} (by more than {min_improvement})", evidence=evidence
            )
        return RolloutDecision(action="retire", reason=f"shadow v{v} is not better: {numbers} {rows}", evidence=evidence)
    rows = f"on the {evidence['rows']} labelled rows it served (the champion's: {evidence['champion_rows']})"
    if mine >= theirs:
        return RolloutDecision(action="promote", reason=f"canary v{v} is not worse: {numbers} {rows}", evidence=evidence)
    return RolloutDecision(action="retire", reason=f"canary v{v} is worse: {numbers} {rows}", evidence=evidence)


def served(frame: pd.DataFrame, rollout: Rollout | None, champion_scores: np.ndarray, candidate_scores: np.ndarray | None, id_column: str):
    """The predictions' rollout columns for scored rows: ``role`` (who served the row),
    ``prediction`` (the score served), and with a rollout ``champion_prediction`` and
    ``candidate_prediction``. Returns ``{column: values}``."""
    if rollout is None or candidate_scores is None:
        return {"prediction": champion_scores, "role": np.full(len(frame), "champion", dtype=object)}
    canary = in_canary(frame[id_column], rollout["share"]) if rollout["strategy"] == "canary" else np.zeros(len(frame), dtype=bool)
    return {
        "prediction": np.where(canary, candidate_scores, champion_scores),
        "role": np.where(canary, "canary", "champion").astype(object),
        "champion_prediction": champion_scores,
        "candidate_prediction": candidate_scores,
    }


def begin_rollout(settings: Settings, staged: dict, airflow_run_id: str) -> None:
    """Puts a better challenger under rollout (``include.rollout``): ``@candidate`` and the
    rollout record; a rollout still running for another version is ended (retired, replaced).
    Idempotent: a retry sets the same alias and record."""
    name, version = settings.name, staged["candidate"]
    running = rollout_record(name)
    if running is not None and running["version"] != version:
        end_rollout(name, running["version"], "retired", f"replaced by v{version}")
        update_card(settings, {"version": running["version"]}, decision=_retired(f"replaced by v{version}", running["champion"]))
    record = Rollout(
        version=version,
        strategy=staged["strategy"],
        share=settings.promotion.canary_share if staged["strategy"] == "canary" else 0.0,
        since=registry.get_version(name, version).window_end,
        champion=staged["champion"],
        started_by=airflow_run_id,
    )
    start_rollout(name, record)


def _retired(reason: str, champion: int | None) -> cards.Decision:
    return cards.Decision(state="retired", reason=reason, champion_before=champion, refused_by=["rollout"])


def arms(roles: pd.Series, strategy: str) -> tuple[pd.Series, pd.Series]:
    """The rows each side of a rollout is judged on, from the predictions' ``role``: under
    canary, the rows each model served; under shadow, every row for both (candidate, champion)."""
    if strategy == "canary":
        return roles == "canary", roles == "champion"
    every = pd.Series(True, index=roles.index)
    return every, every


def rollout_evidence(settings: Settings, running: Rollout) -> RolloutEvidence:
    """The live rows a rollout is judged on so far, from the stored predictions and the labels
    known now (labels that came after an interval was monitored count): every monitored interval
    the candidate took part in, rows from ``running["since"]`` on. The two models are loaded
    only when there are rows to score."""
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
    if rows.empty:
        return RolloutEvidence(rows=0, champion_rows=0, candidate_metric=None, champion_metric=None, intervals=intervals)
    champion_model = registry.load_model(f"models:/{settings.name}/{running['champion']}")
    candidate_model = registry.load_model(f"models:/{settings.name}/{running['version']}")
    mine, theirs = arms(rows["role"], running["strategy"])
    return RolloutEvidence(
        rows=int(mine.sum()),
        champion_rows=int(theirs.sum()),
        candidate_metric=live_metric(candidate_model, rows[mine], settings, rows.loc[mine, "candidate_prediction"].to_numpy()),
        champion_metric=live_metric(champion_model, rows[theirs], settings, rows.loc[theirs, "champion_prediction"].to_numpy()),
        intervals=intervals,
    )


def rollout_step(settings: Settings, airflow_run_id: str) -> PromotionResult | RolloutWait:
    """monitor's ``rollout`` task: promotes or retires the candidate once the live rows decide
    (``decide``), once per Airflow run; the move is recorded before it is made,
    like every move of ``@champion``.

    Returns:
        Nothing to tell (a ``RolloutWait``), or a
        ``PromotionResult``: promoted, or refused by the ``rollout`` check (retired).
    """
    name = settings.name
    key = f"{airflow_run_id}__rollout"
    done = recorded_move(name, key)
    if done is None:
        running = rollout_record(name)
        if running is None:
            return RolloutWait(kind="rollout", rollout=None, action="wait", reason="no rollout running")
        champion = champion_now(name)
        if champion != running["champion"]:
            reason = (
                f"@champion moved to v{champion} during the rollout, which measured v{running['version']} against v{running['champion']}"
            )
            decision = RolloutDecision(action="retire", reason=reason)
        else:
            evidence = rollout_evidence(settings, running)
            mon = settings.promotion
            decision = decide(running, evidence, settings.model.metric, mon.min_rows, mon.min_improvement)
        log.info("rollout: %s", decision["reason"])
        if decision["action"] == "wait":
            return RolloutWait(kind="rollout", rollout=running["version"], action="wait", reason=decision["reason"])
        if decision["action"] == "promote":
            done = plan_move(name, "promote", running["version"], running["champion"], decision["reason"])
        else:
            done = {"action": "retire", "candidate": running["version"], "champion": champion, "reason": decision["reason"]}
        done = record_move(name, key, done)
    if done["action"] == "retire":
        end_rollout(name, done["candidate"], "retired", done["reason"])
        update_card(settings, {"version": done["candidate"]}, decision=_retired(done["reason"], done["champion"]))
        result = decided(
            promoted=False,
            champion=done["champion"],
            reason=done["reason"],
            refused_by=["rollout"],
            challenger=done["candidate"],
        )
    else:
        plan: MovePlan = done

        def finish() -> None:
            registry.client().set_model_version_tag(name, str(plan["to"]), "driftloop.decision", "promoted")
            end_rollout(name, plan["to"], "promoted", plan["reason"])

        applied = carry_out(name, key, plan, then=finish)
        decision = cards.Decision(state="promoted", reason=applied["reason"], champion_before=applied["from"], refused_by=[])
        update_card(settings, {"version": applied["to"]}, decision=decision)
        result = decided(promoted=True, champion=applied["to"], reason=applied["reason"], challenger=applied["to"])
    return {**result, "mlflow_url": registry.version_url(name, result["champion"])}
