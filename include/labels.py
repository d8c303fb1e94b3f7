"""Later-arriving labels: the files of ``data.labels`` (id + target), read and checked.

Labels come from outside the pipeline (a loan book, a claims system) and never pass the ingest
gate, so they are checked here, file by file, before any of them reaches a live metric or a
training window. A file that breaks a rule raises ``LabelsError`` naming the file, the column, the
rule and the numbers; nothing is guessed or silently dropped.

The rules:

- ``labels_columns_present``: every labels file has the id column and the target column.
- ``label_id_not_null``: every row names an id (a label without an id belongs to no row).
- ``label_not_null``: every row holds a label (a file states known labels; "not known yet" is the
  absence of a row, not an empty value).
- ``label_is_class`` (classification): labels are booleans or integer-valued numbers (``1``,
  ``0.0``, ``True``, or text that reads as one, as in a CSV file). Text such as ``"yes"`` is
  refused rather than mapped: the model was trained on the numeric classes of curated data, and a
  guessed mapping could invert them silently.
- ``label_is_number`` (regression): labels are finite numbers.
- ``one_label_per_id``: an id has one label across all files; the same value delivered twice is
  fine (a re-delivery), two different values are a conflict that nobody can resolve here.

Values and conflicts are checked on the rows that are used (the ids asked for), so a bad row stops
exactly the intervals whose ids it labels; the columns are checked on every file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from include.errors import DataError
from include.storage import is_data_file, open_fs

log = logging.getLogger(__name__)

MAX_EXAMPLES = 5


class LabelsError(DataError):
    """Labels break a rule. ``file`` (the labels file, or which rows when the labels came with a
    batch), ``column`` and ``rule`` name what broke. A ``DataError``: retrying cannot fix it."""

    def __init__(self, message: str, file: str, column: str | None, rule: str) -> None:
        super().__init__(message)
        self.file = file
        self.column = column
        self.rule = rule


def label_files(url: str) -> list[str]:
    """The labels files under ``url`` (csv or parquet, recursively), sorted; none when the folder
    does not exist yet. Hidden files (a writer's temporary file) are left out."""
    fs, root = open_fs(url)
    root = root.rstrip("/")
    if not fs.exists(root):
        return []
    return sorted(name for name in fs.find(root) if is_data_file(root, name))


def _read_file(fs, name: str) -> pd.DataFrame:
    with fs.open(name, "rb") as handle:
        return pd.read_csv(handle) if name.lower().endswith(".csv") else pd.read_parquet(handle)


def _examples(values: Iterable) -> list:
    return [v.item() if hasattr(v, "item") else v for v in list(values)[:MAX_EXAMPLES]]


def _fail(file: str, column: str, rule: str, detail: str, source: str | None = None) -> LabelsError:
    return LabelsError(f"{source or f'labels file {file}'}: column {column!r}: rule {rule}: {detail}", file, column, rule)


def _number(value) -> float:
    if isinstance(value, bool | np.bool_ | int | float | np.number):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return np.nan


def label_values(values: pd.Series, task: str | None, file: str, column: str, ids: pd.Series, source: str | None = None) -> pd.Series:
    """Checks labels and returns them as plain numbers.

    Args:
        values: the labels (any dtype: numpy, nullable ``Int64``/``Float64``/``boolean``, object).
        task: ``"classification"``, ``"regression"``, or None for only the rules both share (not
            null, a number).
        file: the labels file's name (or which rows), for messages.
        column: the target column's name, for messages.
        ids: the rows' ids, aligned with ``values``, for messages.
        source: how messages begin (default ``labels file <file>``).

    Returns:
        ``int64`` classes for classification, ``float64`` otherwise, with the same index.

    Raises:
        LabelsError: naming the file, the column, the rule, the count and examples.
    """
    missing = values.isna()
    if missing.any():
        raise _fail(
            file,
            column,
            "label_not_null",
            f"{int(missing.sum())} of {len(values)} rows have no label; e.g. ids {_examples(ids[missing])}",
            source,
        )
    rule = "label_is_class" if task == "classification" else "label_is_number"
    if ptypes.is_bool_dtype(values):
        numbers = pd.Series(values.to_numpy(dtype="float64"), index=values.index)
    elif ptypes.is_numeric_dtype(values):
        numbers = pd.Series(values.to_numpy(dtype="float64", na_value=np.nan), index=values.index)
    else:
        # object or text columns (a CSV column with one non-number is read as text): numbers,
        # booleans and text that reads as a number pass; other text does not
        numbers = pd.Series([_number(v) for v in values], index=values.index, dtype="float64")
    bad = ~np.isfinite(numbers)
    if task == "classification":
        bad |= numbers.where(~bad, 0.0) % 1 != 0
    if bad.any():
        wanted = "booleans or integer-valued numbers (the classes)" if task == "classification" else "finite numbers"
        raise _fail(
            file,
            column,
            rule,
            f"{int(bad.sum())} of {len(values)} labels are not {wanted}; e.g. values {_examples(values[bad])}, ids {_examples(ids[bad])}",
            source,
        )
    return numbers.astype("int64") if task == "classification" else numbers


def read_labels(url: str | None, id_column: str, target: str, task: str | None, ids: Iterable | None = None) -> pd.DataFrame:
    """The labels of ``ids`` from every file under ``url``, checked.

    Args:
        url: the labels folder (path or fsspec URL), or None when the config names none.
        id_column: the config's ``data.id``.
        target: the config's ``data.target``.
        task: the config's ``model.task`` (None: only the rules both tasks share).
        ids: the ids to read labels for; None for every row.

    Returns:
        One row per labelled id, columns ``[id_column, target]``; the target is ``int64``
        (classification) or ``float64``. Empty when there is no folder or no label for ``ids``.

    Raises:
        LabelsError: a file breaks one of the module's rules (named in the message with the file,
            the column and the numbers).
    """
    empty = pd.DataFrame(
        {id_column: pd.Series(dtype="object"), target: pd.Series(dtype="int64" if task == "classification" else "float64")}
    )
    if not url:
        return empty
    fs, _ = open_fs(url)
    wanted = None if ids is None else pd.Index(pd.Series(ids).dropna().unique())
    parts = []
    for name in label_files(url):
        frame = _read_file(fs, name)
        absent = [c for c in (id_column, target) if c not in frame.columns]
        if absent:
            raise _fail(
                name,
                absent[0],
                "labels_columns_present",
                f"missing column(s) {absent}; a labels file needs {[id_column, target]}, this one has {list(frame.columns)}",
            )
        no_id = frame[id_column].isna()
        if no_id.any():
            raise _fail(name, id_column, "label_id_not_null", f"{int(no_id.sum())} of {len(frame)} rows have no id")
        if wanted is not None:
            frame = frame[frame[id_column].isin(wanted)]
        if frame.empty:
            continue
        values = label_values(frame[target], task, name, target, frame[id_column])
        parts.append(pd.DataFrame({id_column: frame[id_column].to_numpy(), target: values.to_numpy(), "_file": name}))
    if not parts:
        return empty
    found = pd.concat(parts, ignore_index=True)
    _refuse_conflicts(found, id_column, target)
    return found.drop_duplicates(id_column)[[id_column, target]].reset_index(drop=True)


def _refuse_conflicts(found: pd.DataFrame, id_column: str, target: str) -> None:
    distinct = found.groupby(id_column)[target].nunique()
    conflicting = distinct[distinct > 1].index
    if conflicting.empty:
        return
    rows = found[found[id_column].isin(conflicting)]
    files = sorted(rows["_file"].unique())
    examples = []
    for key, group in list(rows.groupby(id_column, sort=True))[:MAX_EXAMPLES]:
        seen = ", ".join(f"{v!r} in {f}" for v, f in zip(_examples(group[target]), group["_file"], strict=False))
        examples.append(f"id {_examples([key])[0]!r}: {seen}")
    raise _fail(
        files[-1],
        target,
        "one_label_per_id",
        f"{len(conflicting)} id(s) have different labels across the labels files {files}; e.g. " + "; ".join(examples),
    )


def with_labels(frame: pd.DataFrame, data, task: str | None) -> pd.DataFrame:
    """The frame with its missing labels filled in from ``data.labels``; ``frame`` is not changed.

    A label already in the frame is kept; a label from the files fills only a missing one.

    Args:
        frame: rows with ``data.id`` (unique) and perhaps ``data.target``.
        data: the config's ``data`` section.
        task: the config's ``model.task``.

    Raises:
        LabelsError: a labels file breaks a rule (see the module's docstring).
    """
    if not data.labels or frame.empty:
        return frame
    labels = read_labels(data.labels, data.id, data.target, task, frame[data.id])
    if labels.empty:
        return frame
    found = frame[[data.id]].merge(labels, on=data.id, how="left")[data.target].set_axis(frame.index)
    out = frame.copy()
    out[data.target] = out[data.target].fillna(found) if data.target in frame.columns else found
    return out
