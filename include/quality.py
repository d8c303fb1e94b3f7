"""The data-quality gate: a Great Expectations suite built from the config and, once a champion
exists, from the profile of its training window.

``profile`` and ``build_expectations`` are pure; ``validate`` runs GX and raises
``DataQualityError`` naming each failed column, rule and the numbers.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from include.config import QualitySettings
from include.errors import DataError
from include.storage import Window, to_utc

log = logging.getLogger(__name__)

NUMERIC_TYPES = [
    "int8",
    "int16",
    "int32",
    "int64",
    "Int64",
    "float16",
    "float32",
    "float64",
    "Float64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool",
    "boolean",
]
# "StringDtype": the dtype GX checks once for a whole column of text (see run_expectations)
TEXT_TYPES = ["str", "string", "object", "category", "StringDtype"]
# a column the config names categorical holds labels, whatever they are written as: text, flags
# (True/False), integer codes, or codes read as floats (a CSV column of codes with a gap). GX names
# the values' Python types when the column's dtype is object (as after ``plain_features``).
CATEGORY_TYPES = [*TEXT_TYPES, *NUMERIC_TYPES, "int", "float", "bool"]
MAX_EXAMPLES = 5


class DataQualityError(DataError):
    """A batch failed the gate. ``report`` holds the failed checks by column and rule;
    ``unplaced`` the landing files that belong to no window, and ``late`` the files that arrived
    after a window they have rows in was published, found by the same run (they get their own
    alerts, see ``ingestion.check_landing``)."""

    def __init__(self, message: str, report: dict, unplaced: list[dict] | None = None, late: list[dict] | None = None) -> None:
        super().__init__(message)
        self.report = report
        self.unplaced = unplaced or []
        self.late = late or []


@dataclass(frozen=True)
class Expectation:
    """One check, independent of GX: its GX class name, column and keyword arguments."""

    kind: str
    column: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    source: str = "config"  # "config", "profile" (learned), or a named rule such as "max_clock_skew"
    severity: str = "block"  # "warn": a failure is reported but does not reject the batch


def profile(frame: pd.DataFrame, data, window: Window) -> dict:
    """Learns what a good batch looks like from a reference frame (a champion's training window).

    Args:
        frame: the reference rows.
        data: the config's ``data`` section.
        window: the span the rows cover (for the row rate).

    Returns:
        A JSON-able dict: rows, rows per day, null rates, numeric ranges, category sets.
    """
    days = max((window.end - window.start).total_seconds() / 86400, 1e-9)
    columns: dict[str, dict] = {}
    for col in data.numeric:
        values = pd.to_numeric(frame[col], errors="coerce")
        columns[col] = {
            "kind": "numeric",
            "null_rate": float(values.isna().mean()) if len(values) else 0.0,
            "min": float(values.min()) if values.notna().any() else None,
            "max": float(values.max()) if values.notna().any() else None,
        }
    for col in data.categorical:
        values = frame[col]
        columns[col] = {
            "kind": "categorical",
            "null_rate": float(values.isna().mean()) if len(values) else 0.0,
            # as written (text, flags, codes), so the learned set matches the values themselves
            "categories": sorted((_jsonable(v) for v in values.dropna().unique()), key=lambda v: (type(v).__name__, v)),
        }
    return {"window": window.as_dict(), "rows": len(frame), "rows_per_day": len(frame) / days, "columns": columns}


def build_expectations(
    data,
    window: Window,
    present: list[str],
    learned: dict | None,
    tolerances: QualitySettings,
    require_target: bool = False,
    now: datetime | None = None,
) -> list[Expectation]:
    """The gate's checks for a batch of ``window``.

    Args:
        data: the config's ``data`` section.
        window: the batch's span; timestamps must fall inside it.
        present: the batch's columns (column checks are made only on columns that exist; the
            table check names the missing ones).
        learned: a champion's training profile, or None before any champion exists.
        tolerances: how far a batch may stray from the profile.
        require_target: the target must be present (training windows).
        now: the run's time: event times later than ``now + quality.max_clock_skew`` break the
            rule ``max_clock_skew`` (None: not checked, e.g. when replaying a training window).
    """
    required = [data.timestamp, data.id, *data.features] + ([data.target] if require_target else [])
    checks = [
        Expectation("ExpectTableColumnsToMatchSet", None, {"column_set": required, "exact_match": False}),
        Expectation("ExpectTableRowCountToBeBetween", None, {"min_value": 1}),
    ]
    has = set(present)
    if data.id in has:
        checks += [
            Expectation("ExpectColumnValuesToNotBeNull", data.id),
            Expectation("ExpectColumnValuesToBeUnique", data.id),
        ]
    if data.timestamp in has:
        checks += [
            Expectation("ExpectColumnValuesToNotBeNull", data.timestamp),
            Expectation(
                "ExpectColumnValuesToBeBetween",
                data.timestamp,
                {"min_value": window.start.isoformat(), "max_value": window.end.isoformat(), "strict_max": True},
            ),
        ]
        if now is not None:
            limit = (to_utc(now) + tolerances.max_clock_skew).isoformat()
            checks.append(Expectation("ExpectColumnValuesToBeBetween", data.timestamp, {"max_value": limit}, "max_clock_skew"))
    for col in data.numeric:
        if col in has:
            checks.append(Expectation("ExpectColumnValuesToBeInTypeList", col, {"type_list": NUMERIC_TYPES}))
    for col in data.categorical:
        if col in has:
            checks.append(Expectation("ExpectColumnValuesToBeInTypeList", col, {"type_list": CATEGORY_TYPES}))
    if require_target and data.target in has:
        checks.append(Expectation("ExpectColumnValuesToNotBeNull", data.target))
    if not learned:
        return checks

    def severity(rule: str) -> str:
        return tolerances.severity.get(rule, "block")

    days = (window.end - window.start).total_seconds() / 86400
    expected = learned["rows_per_day"] * days
    checks.append(
        Expectation(
            "ExpectTableRowCountToBeBetween",
            None,
            {
                "min_value": max(1, int(expected * (1 - tolerances.row_count_tolerance))),
                "max_value": int(expected * (1 + tolerances.row_count_tolerance)) + 1,
            },
            "profile",
            severity("row_count"),
        )
    )
    for col, stats in learned["columns"].items():
        if col not in has:
            continue
        mostly = 1.0 - min(1.0, stats["null_rate"] + tolerances.null_rate_slack)
        if mostly > 0:
            checks.append(Expectation("ExpectColumnValuesToNotBeNull", col, {"mostly": round(mostly, 6)}, "profile", severity("null_rate")))
        if stats["kind"] == "numeric" and stats["min"] is not None:
            span = (stats["max"] - stats["min"]) or abs(stats["max"]) or 1.0
            low = stats["min"] - tolerances.range_slack * span
            # A column never negative in the reference stays non-negative: the slack widens the
            # range for drift, not for sign errors.
            low = max(low, 0.0) if stats["min"] >= 0 else low
            checks.append(
                Expectation(
                    "ExpectColumnValuesToBeBetween",
                    col,
                    {
                        "min_value": low,
                        "max_value": stats["max"] + tolerances.range_slack * span,
                        "mostly": tolerances.range_mostly,
                    },
                    "profile",
                    severity("range"),
                )
            )
        elif stats["kind"] == "categorical" and stats["categories"]:
            checks.append(
                Expectation(
                    "ExpectColumnValuesToBeInSet",
                    col,
                    {"value_set": stats["categories"], "mostly": tolerances.category_mostly},
                    "profile",
                    severity("categories"),
                )
            )
    return checks


def _rule_name(kind: str) -> str:
    # ExpectColumnValuesToBeBetween -> expect_column_values_to_be_between
    return "".join("_" + c.lower() if c.isupper() else c for c in kind).lstrip("_")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str):
        try:
            return value.item()
        except (AttributeError, ValueError):
            return str(value)
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _all_text(values: pd.Series) -> bool:
    """Every value that is not missing is a ``str`` (and there is one at least)."""
    if isinstance(values.dtype, pd.StringDtype):
        return True
    return values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) == "string"


def _skip_fingerprint() -> None:
    """GX's pandas engine hashes every row of a batch under 1 GB, twice per validation, for a
    ``pandas_data_fingerprint`` batch marker that driftloop never reads (1.4 s of the gate at 1M x
    20). GX 1.24 has no option for it, only the module's size threshold: set to 0, nothing is
    hashed. ``test_quality`` fails if an upgrade renames it."""
    from great_expectations.execution_engine import pandas_execution_engine

    if hasattr(pandas_execution_engine, "HASH_THRESHOLD"):
        pandas_execution_engine.HASH_THRESHOLD = 0


def _import_gx():
    """Great Expectations, imported once per process, its objects then kept out of the collector.

    GX's import leaves about 300,000 objects that live as long as the process. ``gc.freeze()``
    moves every object alive at that moment to a generation the collector never walks: each later
    full collection, and the one at interpreter exit, skips them. Measured at 1M rows: the
    validation 10% faster, and a gate process ending a second sooner (its exit spent 0.8 s
    walking GX's objects). Frozen objects are still freed by reference counting as usual; only
    cycles among them would wait for the process's end.
    """
    first = "great_expectations" not in sys.modules
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    import great_expectations.expectations as gxe

    if first:
        gc.freeze()
    return gx, gxe


def run_expectations(frame: pd.DataFrame, checks: list[Expectation], id_column: str) -> list[dict]:
    """Runs the checks with Great Expectations and returns one result dict per check."""
    gx, gxe = _import_gx()

    # A categorical column of text goes to GX as pandas' StringDtype() (missing values pd.NA): GX
    # checks its type list against that dtype once. As an object column, GX would check every
    # value's Python type in a Python loop (a second per million rows and column). GX 1.24 matches
    # that exact dtype ("StringDtype" in the list), not pandas 3's default `str` dtype (whose
    # missing value is NaN: observed "str" fails type_list=["str"]).
    typed = {c.column for c in checks if c.kind == "ExpectColumnValuesToBeInTypeList" and c.kwargs["type_list"] == CATEGORY_TYPES}
    frame = frame.astype({c: pd.StringDtype() for c in typed if c in frame.columns and _all_text(frame[c])})
    # other text, flags and categories as object columns: GX checks the values' Python types
    frame = frame.astype(
        {
            c: object
            for c in frame.columns
            if isinstance(frame[c].dtype, pd.BooleanDtype | pd.CategoricalDtype)
            or (isinstance(frame[c].dtype, pd.StringDtype) and frame[c].dtype != pd.StringDtype())
        }
    )
    # nor pandas' nullable numbers (Int64, Float64): with a missing value their type check fails
    # although it observes "int64"; as NumPy floats (NaN for NA) they are checked as numbers
    nullable = [c for c in frame.columns if isinstance(frame[c].dtype, pd.api.extensions.ExtensionDtype) and frame[c].dtype.kind in "iuf"]
    frame = frame.astype({c: "float64" for c in nullable})
    _skip_fingerprint()
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    batch = (
        context.data_sources.add_pandas("driftloop")
        .add_dataframe_asset("batch")
        .add_batch_definition_whole_dataframe("whole")
        .get_batch(batch_parameters={"dataframe": frame})
    )

    def validate(name: str, subset: list[Expectation], index_cols: list[str]) -> dict[tuple, list]:
        suite = gx.ExpectationSuite(name=name)
        for check in subset:
            kwargs = dict(check.kwargs)
            if check.column is not None:
                kwargs["column"] = check.column
            suite.add_expectation(getattr(gxe, check.kind)(**kwargs))
        result = batch.validate(
            context.suites.add(suite),
            result_format={
                "result_format": "SUMMARY",
                "unexpected_index_column_names": index_cols,
                "partial_unexpected_count": MAX_EXAMPLES,
            },
        )
        # GX keeps results in suite order, but match them by type and column anyway (read by name).
        by_key: dict[tuple, list] = {}
        for r in result.results:
            cfg = r.expectation_config
            by_key.setdefault((cfg.type, cfg.kwargs.get("column")), []).append(r)
        return by_key

    # First without row ids: GX lists the id of *every* unexpected row in a Python loop, and a
    # passing check has unexpected rows too (nulls under a tolerance): 7.5 s of a million-row gate
    # with a champion's profile. Then the ids of the failed checks' first rows, from those alone.
    def key(check: Expectation) -> tuple:
        return (_rule_name(check.kind), check.column)

    by_key = validate("driftloop_gate", checks, [])
    results = [(check, by_key[key(check)].pop(0)) for check in checks]
    failed = [check for check, r in results if not r.success]
    with_ids: dict[tuple, list] = {}
    if failed and id_column in frame.columns:
        with_ids = validate("driftloop_gate_examples", failed, [id_column])
    outcomes = []
    for check, r in results:
        res = r.result or {}
        error = None
        if r.exception_info and r.exception_info.get("raised_exception"):
            error = str(r.exception_info.get("exception_message") or "GX could not evaluate this check").splitlines()[0]
        examples = []
        again = {}  # the failed check's result from the run with row ids
        if not r.success and with_ids.get(key(check)):
            again = with_ids[key(check)].pop(0).result or {}
        for item in again.get("partial_unexpected_index_list") or []:
            if isinstance(item, dict) and id_column in item:
                examples.append(item[id_column])
        outcomes.append(
            {
                "rule": _rule_name(check.kind),
                "column": check.column,
                "source": check.source,
                "severity": check.severity,
                "success": bool(r.success) and error is None,
                "expected": _jsonable({k: v for k, v in check.kwargs.items()}),
                "observed": _jsonable(res.get("observed_value")),
                "unexpected_count": _jsonable(res.get("unexpected_count")),
                "unexpected_percent": _jsonable(res.get("unexpected_percent")),
                "element_count": _jsonable(res.get("element_count")),
                "unexpected_values": _jsonable((res.get("partial_unexpected_list") or [])[:MAX_EXAMPLES]),
                "example_ids": _jsonable(examples[:MAX_EXAMPLES]),
                "error": error,
            }
        )
    return outcomes


def describe_failure(outcome: dict) -> str:
    """One line naming the column, the rule and the numbers."""
    where = f"column {outcome['column']!r}" if outcome["column"] else "table"
    if outcome.get("source") not in (None, "config", "profile"):
        where = f"{where} [{outcome['source']}]"
    expected = ", ".join(f"{k}={v}" for k, v in outcome["expected"].items() if k != "value_set") or "-"
    if "value_set" in outcome["expected"]:
        expected = f"values in {outcome['expected']['value_set']}" + (
            f", mostly={outcome['expected'].get('mostly')}" if "mostly" in outcome["expected"] else ""
        )
    if outcome["error"]:
        return f"{where}: {outcome['rule']} ({expected}) could not be checked: {outcome['error']}"
    parts = [f"{where}: {outcome['rule']} ({expected}) failed"]
    if outcome["rule"] == "expect_table_columns_to_match_set" and isinstance(outcome["observed"], list):
        missing = [c for c in outcome["expected"]["column_set"] if c not in outcome["observed"]]
        parts = [f"table: required columns missing: {missing}"]
    if outcome["unexpected_count"] is not None:
        parts.append(f"{outcome['unexpected_count']} of {outcome['element_count']} rows ({outcome['unexpected_percent']:.2f}%) break it")
    if outcome["observed"] is not None:
        parts.append(f"observed {outcome['observed']}")
    if outcome["unexpected_values"]:
        parts.append(f"e.g. values {outcome['unexpected_values']}")
    if outcome["example_ids"]:
        parts.append(f"ids {outcome['example_ids']}")
    return "; ".join(parts)


def validate(
    frame: pd.DataFrame,
    data,
    window: Window,
    learned: dict | None,
    tolerances: QualitySettings,
    stage: str,
    require_target: bool = False,
    now: datetime | None = None,
) -> dict:
    """Runs the gate on a batch.

    Args:
        frame: the batch.
        data: the config's ``data`` section.
        window: the batch's span.
        learned: the champion's training profile, or None.
        tolerances: the config's ``quality`` section.
        stage: a name for messages ("ingest", "retrain").
        require_target: the target column must be there and filled.
        now: the run's time, for the ``max_clock_skew`` rule.

    Returns:
        The report: window, stage, rows, checks run, failures, and ``warnings``: the failures of
        learned rules whose ``quality.severity`` is ``warn`` (they do not reject the batch).

    Raises:
        DataQualityError: one or more blocking checks failed; the message lists each by column
            and rule.
    """
    checks = build_expectations(data, window, list(frame.columns), learned, tolerances, require_target, now)
    outcomes = run_expectations(frame, checks, data.id)
    return judge(outcomes, frame, window, learned, stage)


def judge(outcomes: list[dict], frame: pd.DataFrame, window: Window, learned: dict | None, stage: str) -> dict:
    """The gate's report from check outcomes; raises when a blocking check failed.

    Raises:
        DataQualityError: see ``validate``.
    """
    failures = [o for o in outcomes if not o["success"] and o.get("severity", "block") == "block"]
    warned = [o for o in outcomes if not o["success"] and o.get("severity") == "warn"]
    report = {
        "stage": stage,
        "window": window.as_dict(),
        "rows": len(frame),
        "profile_window": (learned or {}).get("window"),
        "checks": len(outcomes),
        "failed": len(failures),
        "warnings": [describe_failure(o) for o in warned],
        "results": outcomes,
    }
    if failures:
        lines = [describe_failure(f) for f in failures]
        message = (
            f"{stage} gate failed for [{window.start.isoformat()}, {window.end.isoformat()}): "
            f"{len(failures)} of {len(outcomes)} checks failed on {len(frame)} rows:\n  - " + "\n  - ".join(lines)
        )
        report["message"] = message
        raise DataQualityError(message, report)
    for line in report["warnings"]:
        log.warning("%s gate warning (quality.severity: warn): %s", stage, line)
    log.info("%s gate passed: %d checks on %d rows, %d warning(s)", stage, len(outcomes), len(frame), len(warned))
    return report


def report_markdown(report: dict) -> str:
    """A readable version of a gate report, for the quarantine folder."""
    lines = [
        f"# {report['stage']} gate: {'FAILED' if report['failed'] else 'passed'}",
        "",
        f"- window: `{report['window']['start']}` to `{report['window']['end']}` (end excluded)",
        f"- rows: {report['rows']}",
        f"- checks: {report['checks']}, failed: {report['failed']}",
        f"- learned tolerances from the champion's training window: {report.get('profile_window') or 'none (no champion yet)'}",
        "",
        "| column | rule | source | result | numbers |",
        "|---|---|---|---|---|",
    ]
    for o in report["results"]:
        numbers = describe_failure(o).split(" failed", 1)[-1].lstrip("; ") if not o["success"] else ""
        result = "ok" if o["success"] else "FAILED" if o.get("severity", "block") == "block" else "warning"
        lines.append(f"| {o['column'] or '(table)'} | {o['rule']} | {o['source']} | {result} | {numbers} |")
    return "\n".join(lines) + "\n"
