"""The fairness gate: one metric per group of a column, computed with fairlearn's ``MetricFrame`` on
the comparison rows, and the gap between the best and the worst group. Pure: frames and
predictions in, a ``FairnessResult`` out.

Classification metrics read predicted classes (a score at or above ``fairness.threshold`` is the
positive class) except ``roc_auc``, which reads the scores; regression metrics read the values.
Groups with fewer than ``fairness.min_group_rows`` rows are shown but left out of the gap: a
metric on a handful of rows says more about chance than about the model.
"""

from __future__ import annotations

import math
from typing import TypedDict

import numpy as np
import pandas as pd

MISSING_GROUP = "(missing)"


def _rates():
    from fairlearn.metrics import false_negative_rate, false_positive_rate, selection_rate, true_negative_rate, true_positive_rate

    return {
        "selection_rate": selection_rate,
        "true_positive_rate": true_positive_rate,
        "false_positive_rate": false_positive_rate,
        "false_negative_rate": false_negative_rate,
        "true_negative_rate": true_negative_rate,
    }


# metric name -> (task, reads scores rather than classes)
METRICS: dict[str, tuple[str, bool]] = {
    "selection_rate": ("classification", False),
    "true_positive_rate": ("classification", False),
    "false_positive_rate": ("classification", False),
    "false_negative_rate": ("classification", False),
    "true_negative_rate": ("classification", False),
    "accuracy": ("classification", False),
    "roc_auc": ("classification", True),
    "mean_prediction": ("regression", False),
    "mae": ("regression", False),
    "rmse": ("regression", False),
}


class FairnessResult(TypedDict):
    """One model's metric per group and the gap the gate judges."""

    group: str  # the column
    metric: str
    by_group: dict[str, float | None]  # every group; None where the metric cannot be computed
    rows: dict[str, int]
    judged: list[str]  # the groups the gap is taken over (enough rows, a value)
    gap: float | None  # max - min over the judged groups; None with fewer than two


def _function(metric: str, pos_label):
    from sklearn.metrics import accuracy_score, mean_absolute_error, roc_auc_score, root_mean_squared_error

    rates = _rates()
    if metric in rates:
        return lambda y, p: rates[metric](y, p, pos_label=pos_label)
    if metric == "roc_auc":
        return lambda y, p: roc_auc_score(y, p) if len(np.unique(y)) == 2 else float("nan")
    return {
        "accuracy": accuracy_score,
        "mean_prediction": lambda y, p: float(np.mean(p)),
        "mae": mean_absolute_error,
        "rmse": root_mean_squared_error,
    }[metric]


def measure(
    target: pd.Series,
    scores: np.ndarray,
    groups: pd.Series,
    metric: str,
    classes: list | None = None,
    threshold: float = 0.5,
    min_group_rows: int = 30,
) -> FairnessResult:
    """``metric`` per value of ``groups`` (missing values form a group of their own) and the gap.

    Args:
        target: the rows' outcomes.
        scores: the model's predictions for the rows (positive-class probabilities, or values).
        groups: the group column, aligned with ``target``.
        metric: a name of ``METRICS``.
        classes: a classifier's ``classes_`` (the last is the positive class).
        threshold: the score from which a row is predicted positive.
        min_group_rows: groups with fewer rows are left out of the gap.
    """
    from fairlearn.metrics import MetricFrame

    _, reads_scores = METRICS[metric]
    y = np.asarray(target)
    p = np.asarray(scores, dtype="float64")
    if classes is not None and not reads_scores:
        negative, positive = classes[0], classes[-1]
        p = np.where(p >= threshold, positive, negative)
    sensitive = groups.astype(object).where(groups.notna(), MISSING_GROUP).astype(str).to_numpy()
    frame = MetricFrame(
        metrics={metric: _function(metric, classes[-1] if classes is not None else None)},
        y_true=y,
        y_pred=p,
        sensitive_features=pd.Series(sensitive, name=groups.name),
    )
    values = frame.by_group[metric]
    counts = pd.Series(sensitive).value_counts()
    by_group = {str(g): (None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)) for g, v in values.items()}
    rows = {g: int(counts.get(g, 0)) for g in by_group}
    judged = sorted(g for g, v in by_group.items() if v is not None and rows[g] >= min_group_rows)
    gap = max(by_group[g] for g in judged) - min(by_group[g] for g in judged) if len(judged) >= 2 else None
    return FairnessResult(group=str(groups.name), metric=metric, by_group=by_group, rows=rows, judged=judged, gap=gap)


def judge(challenger: FairnessResult, max_gap: float) -> tuple[bool, str]:
    """Whether the challenger's gap is within ``max_gap``, and the sentence that says so with the
    numbers (the best and the worst group). A gap that cannot be measured (fewer than two groups
    with enough rows) passes, and says so."""
    where = f"{challenger['metric']} across {challenger['group']} groups"
    if challenger["gap"] is None:
        return True, f"{where}: fewer than two groups with enough rows to compare ({challenger['rows']}); not judged"
    values = {g: challenger["by_group"][g] for g in challenger["judged"]}
    low, high = min(values, key=values.get), max(values, key=values.get)
    numbers = f"gap {challenger['gap']:.4f} ({high} {values[high]:.4f}, {low} {values[low]:.4f})"
    if challenger["gap"] > max_gap:
        return False, f"{where}: {numbers} exceeds fairness.max_gap {max_gap}"
    return True, f"{where}: {numbers} within fairness.max_gap {max_gap}"


def table(challenger: FairnessResult, champion: FairnessResult | None, challenger_name: str, champion_name: str | None) -> list[str]:
    """Markdown lines: each group's rows and metric for the challenger (and the champion)."""
    head = f"| {challenger['group']} | rows | {challenger_name} |" + (f" {champion_name} |" if champion else "")
    lines = [head, "|---|---|---|" + ("---|" if champion else "")]

    def cell(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    for g in challenger["by_group"]:
        note = "" if g in challenger["judged"] else " (left out)"
        row = f"| {g}{note} | {challenger['rows'][g]:,} | {cell(challenger['by_group'][g])} |"
        if champion:
            row += f" {cell(champion['by_group'].get(g))} |"
        lines.append(row)
    gap = f"| **gap** | | {cell(challenger['gap'])} |" + (f" {cell(champion['gap'])} |" if champion else "")
    return [*lines, gap]
