"""The business metric (``business:`` in the config): what the predictions are worth, per row.

- ``approval_rate``: the share of rows whose score is at or above ``business.threshold`` (the
  rows the business acts on: loans granted, orders flagged). Needs no labels.
- ``expected_value``, classification: each row's value by its outcome, from the 2x2 matrix
  ``business.values`` (``tp``: acted on and positive, ``fp``: acted on and negative, ``fn``,
  ``tn``), averaged over the labelled rows.
- ``expected_value``, regression: each unit of absolute error costs ``business.unit_value``; the
  value is minus the mean cost per labelled row.

Greater is better for both. Pure: scores and outcomes in, a number out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

import numpy as np

if TYPE_CHECKING:
    from include.config import BusinessSettings


class BusinessValue(TypedDict):
    metric: str
    value: float | None  # None: no row to measure it on (no labels yet, for expected_value)
    rows: int


def needs_labels(metric: str) -> bool:
    return metric == "expected_value"


def value(
    settings: BusinessSettings, task: str, scores: np.ndarray, target: np.ndarray | None = None, classes: list | None = None
) -> BusinessValue:
    """The business metric of ``scores`` (and their outcomes ``target``, aligned).

    Args:
        settings: the config's ``business`` section.
        task: classification or regression.
        scores: positive-class probabilities, or predicted values.
        target: the outcomes, NaN (or None) where unknown; rows without one are left out of
            ``expected_value``.
        classes: a classifier's classes (the last is the positive class); default ``[0, 1]``.
    """
    p = np.asarray(scores, dtype="float64")
    if settings.metric == "approval_rate":
        p = p[~np.isnan(p)]
        return BusinessValue(metric="approval_rate", value=float(np.mean(p >= settings.threshold)) if len(p) else None, rows=len(p))
    if target is None:
        return BusinessValue(metric="expected_value", value=None, rows=0)
    y = np.asarray(target, dtype=object)
    known = np.array([t is not None and not (isinstance(t, float) and np.isnan(t)) for t in y]) & ~np.isnan(p)
    p, y = p[known], y[known]
    if not len(p):
        return BusinessValue(metric="expected_value", value=None, rows=0)
    if task == "regression":
        cost = settings.unit_value * np.abs(p - y.astype("float64"))
        return BusinessValue(metric="expected_value", value=float(-np.mean(cost)), rows=len(p))
    positive = (classes or [0, 1])[-1]
    acted, happened = p >= settings.threshold, np.array([t == positive for t in y])
    m = settings.values
    per_row = np.select([acted & happened, acted & ~happened, ~acted & happened], [m.tp, m.fp, m.fn], default=m.tn)
    return BusinessValue(metric="expected_value", value=float(np.mean(per_row)), rows=len(p))


def fell(current: float | None, reference: float | None, max_drop: float) -> bool | None:
    """Whether an interval's value fell more than ``max_drop`` below the reference (None when
    either is unknown)."""
    if current is None or reference is None:
        return None
    return reference - current > max_drop
