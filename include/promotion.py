"""Champion versus challenger: the comparison rule and the alias moves.

``compare`` and ``decide`` are pure. The comparison uses the rows of the challenger's last
time-based fold (rows its comparison model never trained on), minus any rows inside the
champion's own training window, so neither model is scored on rows it trained on.

Every move of ``@champion`` (a promotion, a rollback by hand or by the guard) is a ``MovePlan``:
recorded on the registered model before anything moves (``plan_move``, ``registry.record_move``),
then applied by ``carry_out`` as a compare-and-set: only while ``@champion`` is still the version
the plan starts from (or already the one it ends at: a retry), history first, then the alias,
then the plan is marked applied. A worker killed at any point leaves a plan its retry completes;
an applied plan is never applied again. MLflow has no atomic compare-and-set on aliases: the
one-slot Airflow pool ``driftloop_registry`` keeps driftloop's own moves from interleaving, and
the check catches moves made between a comparison and its promotion (a rollback during an
approval wait).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NotRequired, TypedDict

import pandas as pd

from include import registry
from include.errors import DriftloopError, RegistryError
from include.training import score

log = logging.getLogger(__name__)


class PromotionRejected(DriftloopError):
    """The challenger cannot be promoted; the message says why, with the numbers."""


class ChampionMoved(RegistryError):
    """``@champion`` is no longer the version a move was planned from (someone promoted or rolled
    back meanwhile): the move is refused rather than undo theirs."""


# "from" is a Python keyword, hence the functional form
MovePlan = TypedDict(
    "MovePlan",
    {
        "action": Literal["promote", "rollback"],
        "from": int | None,  # @champion when the move was decided (the compare-and-set's expected value)
        "to": int,
        "history": list[int],  # the champion history once the move is done
        "reason": str,
        "applied": bool,
        "verdicts": NotRequired[list[str]],  # a guard's rollback: the verdicts that showed the degradation
    },
)


class MoveResult(MovePlan):
    """An applied move as a task returns it: the plan plus the new champion's MLflow page."""

    mlflow_url: str | None


class PromotionResult(TypedDict):
    """What retrain's ``promote`` did: ``promoted`` only when ``@champion`` moved to the challenger."""

    promoted: bool
    champion: int | None
    reason: str
    mlflow_url: str | None


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def decide(challenger: float, champion: float | None, min_improvement: float, metric: str) -> Decision:
    """The challenger wins when there is no champion, or when it beats the champion by more than
    ``min_improvement`` (scikit-learn scorers are all greater-is-better)."""
    if champion is None:
        return Decision(True, f"no champion yet; challenger {metric} = {challenger:.4f}")
    margin = challenger - champion
    if margin > min_improvement:
        return Decision(True, f"challenger {metric} {challenger:.4f} beats champion {champion:.4f} by {margin:+.4f} (> {min_improvement})")
    return Decision(
        False, f"challenger {metric} {challenger:.4f} does not beat champion {champion:.4f} by more than {min_improvement} ({margin:+.4f})"
    )


def comparison_rows(frame: pd.DataFrame, timestamp: str, champion_window_end: str | None) -> pd.DataFrame:
    """The out-of-time rows both models may be scored on: those after the champion's window."""
    if champion_window_end is None:
        return frame
    return frame[frame[timestamp] >= pd.Timestamp(champion_window_end)]


def compare(settings, rows: pd.DataFrame, challenger_model, champion_model, champion: registry.VersionInfo | None) -> dict:
    """Scores both models on the same out-of-time rows and decides.

    Raises:
        PromotionRejected: a champion exists but too few rows lie outside both training windows.
    """
    data, metric = settings.data, settings.model.metric
    usable = comparison_rows(rows, data.timestamp, champion.window_end if champion else None)
    if champion is not None and len(usable) < settings.promotion.min_rows:
        raise PromotionRejected(
            f"only {len(usable)} out-of-time rows lie after champion v{champion.version}'s window "
            f"(ends {champion.window_end}); promotion.min_rows is {settings.promotion.min_rows}"
        )
    challenger_score = score(challenger_model, usable, data.features, data.target, metric)
    champion_score = score(champion_model, usable, data.features, data.target, metric) if champion_model is not None else None
    decision = decide(challenger_score, champion_score, settings.promotion.min_improvement, metric)
    return {
        "rows": len(usable),
        "rows_start": usable[data.timestamp].min().isoformat() if len(usable) else None,
        "rows_end": usable[data.timestamp].max().isoformat() if len(usable) else None,
        "challenger_score": challenger_score,
        "champion_score": champion_score,
        "champion_version": champion.version if champion else None,
        "better": decision.promote,
        "reason": decision.reason,
    }


def plan_move(
    name: str, action: Literal["promote", "rollback"], to: int, expected: int | None, reason: str, history: list[int] | None = None
) -> MovePlan:
    """A move of ``name@champion`` from ``expected`` to ``to``, not yet recorded nor applied.

    Args:
        name: the registered model.
        action: what the move is, for the record.
        to: the version that becomes champion.
        expected: the version ``@champion`` must still be when the move is applied (None: no
            champion).
        reason: why, in words (goes into the record and the result).
        history: the champion history afterwards; by default the settled history with ``to``
            appended (unless it already ends with it).
    """
    if history is None:
        settled = registry.settled_history(registry.champion_history(name), expected)
        history = settled if settled[-1:] == [to] else [*settled, to]
    return {"action": action, "from": expected, "to": to, "history": history, "reason": reason, "applied": False}


def champion_now(name: str) -> int | None:
    current = registry.alias_version(name, registry.CHAMPION)
    return current.version if current else None


def carry_out(name: str, airflow_run_id: str, plan: MovePlan, then: Callable[[], None] | None = None) -> MovePlan:
    """Applies a recorded plan, once, as a compare-and-set on ``@champion``.

    Each step is idempotent, so a retry after a crash anywhere completes the move: the history and
    the alias (``registry.set_champion``, history first), then ``then()`` (tags, marks), then the
    record is marked applied. An applied plan is returned as it is: a run cleared long after,
    when someone may have moved the champion on or back, does not move it again.

    Returns:
        The plan, ``applied`` when the move is done.

    Raises:
        ChampionMoved: ``@champion`` is neither the plan's ``from`` nor its ``to``.
    """
    if plan.get("applied"):
        return plan
    now = champion_now(name)
    if now not in (plan["from"], plan["to"]):
        was = f"v{plan['from']}" if plan["from"] is not None else "unset"
        is_now = f"is v{now} now" if now is not None else "was removed"
        raise ChampionMoved(
            f"{name}@champion {is_now}, but this {plan.get('action', 'move')} to v{plan['to']} was decided when it was {was}: "
            f"refused rather than undo that move. Re-run to decide against the current champion."
        )
    registry.set_champion(name, plan["to"], plan["history"])
    if then is not None:
        then()
    applied: MovePlan = {**plan, "applied": True}
    registry.record_move(name, airflow_run_id, applied)
    log.info("%s@champion: v%s -> v%s (%s)", name, plan["from"], plan["to"], plan["action"])
    return applied
