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
from typing import Literal, NotRequired, TypedDict

import numpy as np
import pandas as pd

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
