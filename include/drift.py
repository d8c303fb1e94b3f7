"""Drift between an interval and its reference: per column, Evidently's method computed on all
rows (``column_drift``), the dataset-level decision (``drift_decision``, pure), and Evidently's HTML
report drawn from a sample with the same methods (``drift_report``).

The verdict never guesses from a method's name whether a small or a large score is drift: the two
methods Evidently picks by default are computed here with their own rule (``include.stattests``),
and every other method is Evidently's own function, whose ``drifted`` is read as it is.
``plain_features`` turns nullable pandas dtypes into the plain NumPy values scikit-learn and
Evidently take.
"""

from __future__ import annotations

import html as html_text
import logging
import math
import os
import re
from collections.abc import Sequence
from typing import TypedDict

import numpy as np
import pandas as pd

from include import stattests
from include.errors import DataError

log = logging.getLogger(__name__)


def plain_features(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """A copy whose feature columns hold numpy dtypes: numeric as ``float64``, categorical as
    ``object``, missing values as NaN in both.

    Nullable pandas dtypes (``Int64``, ``Float64``, ``boolean``, ``string``) are valid data, but
    scikit-learn refuses ``pd.NA`` in a numeric column and in its encoders, and Evidently 0.7.23
    fails on ``Int64``/``Float64`` columns without a missing value (``AttributeError``) and on
    booleans (``TypeError``). Columns that are absent are left absent.

    Raises:
        ValueError: a numeric column holds values that are not numbers (names the column).
    """
    out = frame.copy()
    for col in numeric:
        if col in out.columns:
            try:
                out[col] = out[col].to_numpy(dtype="float64", na_value=np.nan)
            except (TypeError, ValueError) as err:
                raise DataError(f"column {col!r} is configured numeric but holds values that are not numbers: {err}") from None
    for col in categorical:
        if col in out.columns:
            values = out[col]
            out[col] = values.astype(object).where(values.notna(), np.nan)
    return out


class ColumnDrift(TypedDict):
    """One column's drift (``series_drift``), as the verdict's ``columns`` and its prediction and
    target drift hold it."""

    status: str  # ok, or why it could not be judged as usual (missing_in_reference, constant, ...)
    drifted: bool | None  # None: not judged
    score: float | None
    threshold: float | None
    method: str | None
    method_name: str | None
    note: str


class DriftDecision(TypedDict):
    """The dataset-level decision (``drift_decision``)."""

    drift: bool
    drift_share: float
    drifted_columns: int
    drifted: list[str]
    column_issues: dict[str, str]


def drift_decision(column_scores: dict[str, ColumnDrift], drift_share: float) -> DriftDecision:
    """Dataset drift from per-column results: drifted when the share of drifted columns reaches
    ``drift_share`` (Evidently 0.7 has no dataset-drift flag of its own).

    The share counts the columns that were judged: a column whose ``drifted`` is None (missing from
    the reference, or without a usable score) is listed in ``column_issues`` but left out of both
    sides of the share, so it can neither raise nor dilute it. With no judged column the share is
    0.0 and the interval is not drifted (its issues say why).

    Returns:
        ``{"drift", "drift_share", "drifted_columns", "drifted", "column_issues"}``;
        ``column_issues`` maps each column whose status is not ``ok`` to its status.
    """
    judged = {c: r for c, r in column_scores.items() if r["drifted"] is not None}
    drifted = sorted(c for c, r in judged.items() if r["drifted"])
    share = len(drifted) / len(judged) if judged else 0.0
    issues = {c: r["status"] for c, r in sorted(column_scores.items()) if r.get("status", "ok") != "ok"}
    return {
        "drift": share >= drift_share,
        "drift_share": share,
        "drifted_columns": len(drifted),
        "drifted": drifted,
        "column_issues": issues,
    }


def column_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    data,
    overrides: dict | None = None,
    workers: int | None = None,
) -> dict[str, ColumnDrift]:
    """Per feature column of ``data``: the drift between ``reference`` and ``current`` on all their
    rows, by Evidently's method for the column (its automatic choice, or ``overrides[column]``'s
    ``method``/``threshold``; see ``include.stattests``).

    Wasserstein and Jensen-Shannon (Evidently's choices for references over 1,000 rows) are computed
    here with vectorised NumPy (the same formulas; ``tests/unit/test_drift.py`` holds them to
    Evidently's to 1e-9); every other method runs Evidently's own function, whose ``drifted`` is read
    as it is. Columns run on ``workers`` threads (NumPy's sorts release the GIL).

    Statuses, and whether the column counts as drifted:

    - ``ok``, ``constant`` (one distinct value on a side): the method decides. A column that
      collapsed to one value differs from a varied reference, and the method says so.
    - ``all_null``: no value in the current rows, values in the reference: drifted. The model still
      predicts (missing values take a default branch), so nothing else would flag a feed that broke;
      a whole input gone is as large a change as a column can make.
    - ``all_null_in_reference``: values now, none in the reference: drifted, for the same reason the
      other way round (the champion learnt nothing from this column).
    - ``missing_in_current``: the column is not in the current rows at all: drifted, as ``all_null``.
    - ``empty``: no value on either side: not drifted (nothing moved).
    - ``missing_in_reference``: the reference predates the column (the config named it after the
      champion's window was curated): not judged (``drifted`` None): there is nothing to compare
      with, and the config change is not a change in the data.
    - ``no_score``: the method gave no number (NaN): not judged.

    Values that are null or infinite are left out before a method runs, as Evidently does.

    Returns:
        Per column ``{"status", "drifted", "score", "threshold", "method", "method_name", "note"}``.
    """
    overrides = overrides or {}
    kinds = {**dict.fromkeys(data.numeric, "numerical"), **dict.fromkeys(data.categorical, "categorical")}

    def one(col: str) -> ColumnDrift:
        override = overrides.get(col)
        return series_drift(
            reference[col] if col in reference.columns else None,
            current[col] if col in current.columns else None,
            kinds[col],
            method=getattr(override, "method", None),
            threshold=getattr(override, "threshold", None),
        )

    columns = list(data.features)
    workers = workers or min(len(columns), os.cpu_count() or 1) or 1
    if workers == 1:
        return {col: one(col) for col in columns}
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="drift") as pool:
        return dict(zip(columns, pool.map(one, columns), strict=True))


def series_drift(
    reference: pd.Series | None,
    current: pd.Series | None,
    kind: str,
    method: str | None = None,
    threshold: float | None = None,
) -> ColumnDrift:
    """The drift of one column (``None`` for a side that lacks it); see ``column_drift``."""
    result: ColumnDrift = {
        "status": "ok",
        "drifted": None,
        "score": None,
        "threshold": None,
        "method": None,
        "method_name": None,
        "note": "",
    }
    if reference is None:
        return {**result, "status": "missing_in_reference", "note": "not in the reference rows"}
    if current is None:
        return {**result, "status": "missing_in_current", "drifted": True, "note": "not in the current rows"}
    ref, cur = _Side.of(reference, kind), _Side.of(current, kind)
    note = f"{cur.count} of {len(current)} current rows and {ref.count} of {len(reference)} reference rows have a value"
    if ref.count == 0 or cur.count == 0:
        status = {(True, True): "empty", (False, True): "all_null", (True, False): "all_null_in_reference"}[
            (ref.count == 0, cur.count == 0)
        ]
        return {**result, "status": status, "drifted": status != "empty", "note": note}
    if ref.distinct == 1 or cur.distinct == 1:
        result["status"] = "constant"
        note += f"; distinct values: {cur.distinct} current, {ref.distinct} reference"
    chosen = (
        stattests.check_method(method, kind, "monitoring.columns")
        if method
        else stattests.default_method(kind, ref.count, ref.union_distinct(cur))
    )
    limit = chosen.default_threshold if threshold is None else float(threshold)
    score, drifted = _run(chosen, ref, cur, kind, limit)
    result.update(method=chosen.name, method_name=chosen.display, threshold=limit, note=note)
    if score is None or math.isnan(score):
        # a result the method could not compute decides nothing: left out of the share
        log.warning("%s gave no score (%s); left out of the drift share", chosen.name, note)
        return {**result, "status": "no_score", "note": f"{note}; {chosen.display} gave no score"}
    return {**result, "score": score, "drifted": drifted}


class _Side:
    """One side of a column without its nulls and infinities: numerical values sorted (a float64
    array), categorical values counted (a Series: value -> count)."""

    def __init__(self, kind: str, values: np.ndarray | None = None, counts: pd.Series | None = None):
        self.kind, self.values, self.counts = kind, values, counts
        if kind == "numerical":
            self.count = len(values)
            self.distinct = int(np.count_nonzero(values[1:] != values[:-1])) + 1 if self.count else 0
        else:
            self.count = int(counts.sum())
            self.distinct = len(counts)

    @classmethod
    def of(cls, series: pd.Series, kind: str) -> _Side:
        if kind == "numerical":
            try:
                values = series.to_numpy(dtype="float64", na_value=np.nan)
            except (TypeError, ValueError) as err:
                raise DataError(f"column {series.name!r} is configured numeric but holds values that are not numbers: {err}") from None
            values = values[np.isfinite(values)]  # a copy, sorted in place
            values.sort()
            return cls(kind, values=values)
        keep = series.notna()
        if series.dtype.kind == "f":  # categories coded as floats: infinities are dropped as nulls
            keep &= ~np.isinf(series.to_numpy(dtype="float64", na_value=np.nan))
        # counted in the column's own dtype (Arrow-backed strings count fast), keyed as Python values
        counts = series[keep].value_counts(sort=False)
        counts.index = counts.index.astype(object)
        return cls(kind, counts=counts)

    def unique(self) -> np.ndarray | pd.Index:
        if self.kind == "numerical":
            return self.values[np.r_[True, self.values[1:] != self.values[:-1]]] if self.count else self.values
        return self.counts.index

    def union_distinct(self, other: _Side) -> int:
        if self.kind == "numerical":
            if self.distinct > 5 or other.distinct > 5:
                return max(self.distinct, other.distinct)  # above every cut Evidently's choice makes
            return len(np.union1d(self.unique(), other.unique()))
        return len(self.counts.index.union(other.counts.index))

    def series(self) -> pd.Series:
        """The values as Evidently's functions take them (order does not matter to a two-sample test)."""
        if self.kind == "numerical":
            return pd.Series(self.values)
        return pd.Series(np.repeat(self.counts.index.to_numpy(dtype=object), self.counts.to_numpy()))


def _run(method: stattests.Method, ref: _Side, cur: _Side, kind: str, threshold: float) -> tuple[float | None, bool | None]:
    """``(score, drifted)``: vectorised here for Wasserstein and Jensen-Shannon, Evidently's own
    function (and its ``drifted``) for every other method."""
    if method.name == "wasserstein":
        norm = max(float(np.std(ref.values)), 0.001)
        score = wasserstein_sorted(ref.values, cur.values) / norm
        return score, method.drifted(score, threshold)
    if method.name == "jensenshannon":
        score = _jensenshannon(ref, cur, kind)
        return score, method.drifted(score, threshold)
    from evidently.legacy.calculations.stattests.registry import get_registered_stattest
    from evidently.legacy.core import ColumnType

    types = {"numerical": ColumnType.Numerical, "categorical": ColumnType.Categorical}
    # chi-square and Z are registered for categories; Evidently's own choice runs them on few numbers too
    registered = kind if kind in method.kinds else method.kinds[0]
    test = get_registered_stattest(method.name, types[registered])
    with np.errstate(divide="ignore", invalid="ignore"):
        result = test(ref.series(), cur.series(), types[kind], threshold)
    return float(result.drift_score), bool(result.drifted)


def wasserstein_sorted(u: np.ndarray, v: np.ndarray) -> float:
    """The first Wasserstein distance between two samples, each sorted ascending (what
    ``scipy.stats.wasserstein_distance`` gives, without its merge sort and searches).

    It is the area between the two quantile functions. Both are steps: ``u``'s changes at
    multiples of ``1/n``, ``v``'s at multiples of ``1/m``; in units of ``1/(n*m)`` these are
    integers, so the merged step points need one integer sort and no search.
    """
    n, m = len(u), len(v)
    if n == m:
        return float(np.abs(u - v).mean())
    steps = np.concatenate([np.arange(1, n + 1, dtype=np.int64) * m, np.arange(1, m + 1, dtype=np.int64) * n])
    steps.sort()
    widths = np.diff(steps, prepend=0)
    return float(np.dot(widths, np.abs(u[(steps - 1) // m] - v[(steps - 1) // n])) / (n * m))


def _jensenshannon(ref: _Side, cur: _Side, kind: str) -> float:
    """Evidently's Jensen-Shannon distance (``get_binned_data`` without zero filling, then SciPy's
    ``jensenshannon``): numbers with more than 20 distinct reference values in Sturges bins over
    both sides, anything else by value."""
    from scipy.spatial import distance

    if kind == "numerical" and ref.distinct > 20:
        edges = np.histogram_bin_edges(np.concatenate([ref.values, cur.values]), bins="sturges")
        p = np.histogram(ref.values, edges)[0] / ref.count
        q = np.histogram(cur.values, edges)[0] / cur.count
    else:
        if kind == "numerical":
            ref_counts, cur_counts = (
                pd.Series(counts, index=values) for values, counts in (np.unique(side.values, return_counts=True) for side in (ref, cur))
            )
        else:
            ref_counts, cur_counts = ref.counts, cur.counts
        keys = ref_counts.index.union(cur_counts.index)
        p = ref_counts.reindex(keys, fill_value=0).to_numpy(dtype="float64") / ref.count
        q = cur_counts.reindex(keys, fill_value=0).to_numpy(dtype="float64") / cur.count
    return float(distance.jensenshannon(p, q))


def drift_report(
    reference: pd.DataFrame, current: pd.DataFrame, data, columns: dict[str, dict], drift_share: float, rows: int, seed: int = 0
) -> str:
    """Evidently's data-drift report (HTML) on a sample of at most ``rows`` rows a side, with each
    column's method and threshold from ``columns`` (``column_drift``'s result), so its pictures
    show the same tests. The verdict is the one on all rows; a note at the top of the page says so.
    Columns without a method (all null, missing on a side) are left out; with none left, a short
    page names each column's status.
    """
    return drift_snapshot(reference, current, data, columns, drift_share, rows, seed).html()


class DriftSnapshot:
    """One Evidently run of an interval (``drift_snapshot``): the snapshot, and its HTML page with
    driftloop's note on the sample."""

    def __init__(self, snapshot, columns: dict[str, dict], current_rows: int, reference_rows: int, sampled: tuple[int, int]) -> None:
        self.snapshot = snapshot
        self.columns = columns
        self.current_rows, self.reference_rows = current_rows, reference_rows
        self.sampled = sampled

    def html(self) -> str:
        if not any(c["method"] is not None for c in self.columns.values()):
            return _no_comparison_html(self.columns)
        page = self.snapshot.get_html_str(as_iframe=False)
        note = (
            "<div style='font-family:sans-serif;padding:8px;background:#fff8e1;border:1px solid #f0c36d'>"
            f"driftloop: the pictures below come from a random sample of {self.sampled[0]} of {self.current_rows} current rows and "
            f"{self.sampled[1]} of {self.reference_rows} reference rows; the verdict (drifted columns, scores) was computed on all rows "
            "with the same methods and thresholds and is in the interval's verdict record and its MLflow run.</div>"
        )
        return re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + note, page, count=1)


def drift_snapshot(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    data,
    columns: dict[str, dict],
    drift_share: float,
    rows: int,
    seed: int = 0,
    metrics: Sequence = (),
    **run_args,
) -> DriftSnapshot:
    """Evidently's data-drift preset on a sample of at most ``rows`` rows a side, with each
    column's method and threshold from ``columns``, plus ``metrics`` (run first, on the same
    data); ``run_args`` go to ``Report.run`` (``timestamp``, ``metadata``, ``tags``, ``name``).
    Columns without a method are left out; with none left, only ``metrics`` run."""
    cols = [c for c in data.features if columns[c]["method"] is not None]
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    numeric = [c for c in data.numeric if c in cols]
    categorical = [c for c in data.categorical if c in cols]
    kinds = {**dict.fromkeys(numeric, "numerical"), **dict.fromkeys(categorical, "categorical")}
    # a method Evidently registers for the other kind only (chi-square on a few numbers) is its
    # automatic choice on the sample, which is the same one for a reference this small
    methods = {c: columns[c]["method"] for c in cols if kinds[c] in stattests.METHODS[columns[c]["method"]].kinds}
    sides = []
    for frame in (current, reference):
        sample = frame[cols].sample(n=rows, random_state=seed) if len(frame) > rows else frame[cols]
        sides.append(sample)
    items = list(metrics)
    if cols:
        items.append(
            DataDriftPreset(
                columns=cols,
                drift_share=drift_share,
                per_column_method=methods,
                per_column_threshold={c: columns[c]["threshold"] for c in methods},
            )
        )
    elif not items:
        return DriftSnapshot(None, columns, len(current), len(reference), (0, 0))
    else:  # nothing to compare: the metrics alone, on the interval's row count
        sides = [pd.DataFrame({"rows": [len(current)]}), pd.DataFrame({"rows": [len(reference)]})]
        numeric, categorical = ["rows"], []
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    # a constant column has no variance, and Evidently's correlation overview divides by it; the
    # column's status already says so, so numpy's division warnings would only add noise
    with np.errstate(divide="ignore", invalid="ignore"):
        snapshot = Report(items).run(
            *(Dataset.from_pandas(plain_features(s, numeric, categorical), data_definition=definition) for s in sides), **run_args
        )
    return DriftSnapshot(snapshot, columns, len(current), len(reference), (len(sides[0]), len(sides[1])) if cols else (0, 0))


def _no_comparison_html(column_scores: dict[str, dict]) -> str:
    rows = "".join(
        f"<tr><td>{html_text.escape(c)}</td><td>{r['status']}</td><td>{r['drifted']}</td><td>{html_text.escape(r['note'])}</td></tr>"
        for c, r in column_scores.items()
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>driftloop drift</title></head><body>"
        "<h1>No feature column could be compared</h1>"
        "<table><tr><th>column</th><th>status</th><th>drifted</th><th>why</th></tr>" + rows + "</table></body></html>"
    )
