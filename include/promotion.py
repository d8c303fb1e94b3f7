"""Champion versus challenger: the comparison rule and the alias moves.

``compare`` and ``decide`` are pure. The comparison uses the rows of the challenger's last
time-based fold (rows its comparison model never trained on), minus any rows inside the
champion's own training window, so neither model is scored on rows it trained on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pandas as pd

from include import registry
from include.training import score

log = logging.getLogger(__name__)


class PromotionRejected(RuntimeError):
    """The challenger cannot be promoted; the message says why, with the numbers."""


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
