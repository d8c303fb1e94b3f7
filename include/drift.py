"""Drift between an interval and its reference: which columns can be compared, Evidently's
per-column tests on those, and the dataset-level decision.

``column_states`` and ``drift_decision`` are pure; ``evidently_drift`` is the Evidently adapter
(results read by metric name and column). ``plain_features`` turns nullable pandas dtypes into the
plain NumPy values scikit-learn and Evidently take.
"""

from __future__ import annotations

import html as html_text
import logging
import math
import os

import numpy as np
import pandas as pd

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


def drift_decision(column_scores: dict[str, dict], drift_share: float) -> dict:
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


def column_states(reference: pd.DataFrame, current: pd.DataFrame, columns: list[str]) -> dict[str, dict]:
    """What can be said about each feature column before any test runs (pure).

    Statuses, and whether the column counts as drifted:

    - ``ok``, ``constant`` (one distinct value on a side): compared by Evidently, whose test decides.
      A column that collapsed to one value differs from a varied reference, and the test says so.
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

    Returns:
        Per column ``{"status", "drifted", "compare", "note"}``; ``compare`` says whether Evidently
        must decide ``drifted``.
    """
    states = {}
    for col in columns:
        if col not in reference.columns:
            states[col] = {"status": "missing_in_reference", "drifted": None, "compare": False, "note": "not in the reference rows"}
            continue
        if col not in current.columns:
            states[col] = {"status": "missing_in_current", "drifted": True, "compare": False, "note": "not in the current rows"}
            continue
        ref, cur = reference[col].dropna(), current[col].dropna()
        counts = f"{len(cur)} of {len(current)} current rows and {len(ref)} of {len(reference)} reference rows have a value"
        if ref.empty and cur.empty:
            state = {"status": "empty", "drifted": False, "compare": False}
        elif cur.empty:
            state = {"status": "all_null", "drifted": True, "compare": False}
        elif ref.empty:
            state = {"status": "all_null_in_reference", "drifted": True, "compare": False}
        elif ref.nunique() == 1 or cur.nunique() == 1:
            state = {"status": "constant", "drifted": None, "compare": True}
            counts += f"; distinct values: {cur.nunique()} current, {ref.nunique()} reference"
        else:
            state = {"status": "ok", "drifted": None, "compare": True}
        states[col] = {**state, "note": counts}
    return states


def evidently_drift(reference: pd.DataFrame, current: pd.DataFrame, data, drift_share: float):
    """Runs Evidently's data-drift preset on the feature columns it can compare.

    Columns that cannot be compared (all null, missing on a side: see ``column_states``) are not
    given to Evidently, which raises on an all-null column; they are reported with their status.
    Nullable pandas dtypes are compared as numpy values (see ``plain_features``).

    Returns:
        ``(column_scores, html)``: per column ``{"status", "drifted", "score", "threshold",
        "method", "note"}``, Evidently's results read by metric name and column, and the report's
        HTML (a short page naming the columns when none could be compared).
    """
    states = column_states(reference, current, data.features)
    column_scores = {
        c: {"status": s["status"], "drifted": s["drifted"], "score": None, "threshold": None, "method": None, "note": s["note"]}
        for c, s in states.items()
    }
    numeric = [c for c in data.numeric if states[c]["compare"]]
    categorical = [c for c in data.categorical if states[c]["compare"]]
    cols = [*numeric, *categorical]
    if not cols:
        return column_scores, _no_comparison_html(column_scores)

    os.environ.setdefault("DO_NOT_TRACK", "1")
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    # a constant column has no variance, and Evidently's correlation overview divides by it; the
    # column's status already says so, so numpy's division warnings would only add noise
    with np.errstate(divide="ignore", invalid="ignore"):
        snapshot = Report([DataDriftPreset(columns=cols, drift_share=drift_share)]).run(
            Dataset.from_pandas(plain_features(current[cols], numeric, categorical), data_definition=definition),
            Dataset.from_pandas(plain_features(reference[cols], numeric, categorical), data_definition=definition),
        )
    results = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith(":ValueDrift"):
            results[config["column"]] = metric
    for column in cols:
        entry = column_scores[column]
        metric = results.get(column)
        value = float(metric["value"]) if metric is not None else math.nan
        if math.isnan(value):
            # a result Evidently could not compute decides nothing: left out of the share
            entry.update(status="no_score", drifted=None, note=f"{entry['note']}; Evidently gave no drift score")
            log.warning("column %r: Evidently gave no drift score; left out of the drift share", column)
            continue
        config = metric["config"]
        threshold = float(config.get("threshold") or 0.0)
        method = str(config.get("method") or "")
        # p-value tests drift when the value is below the threshold, distances when above
        is_p_value = "p_value" in method.lower() or "test" in method.lower()
        entry.update(score=value, threshold=threshold, method=method, drifted=value < threshold if is_p_value else value >= threshold)
    return column_scores, snapshot.get_html_str(as_iframe=False)


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
