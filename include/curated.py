"""Curated storage: a Delta Lake table (delta-rs) under ``<storage>/curated``.

Partitioned by event date (the column ``_event_date``, ``YYYY-MM-DD``). A window's rows are
replaced in one commit (an overwrite whose predicate is the window), so a reader sees either the
old rows of the window or the new ones, never half of each, and a task that dies mid-write leaves
the old rows. Every commit names the Airflow DAG, run and window in its metadata; time travel
(``restore_window``) is the undo. DuckDB, Polars and Spark read the table as it is.

Types are fixed on the way in, because delta-rs casts a batch to the table's schema and would, for
instance, truncate ``1.5`` into a ``long`` column: the config's numeric features are stored as
doubles, the event time as a UTC timestamp; other columns keep their type (whole numbers read as
floats go back into an integer column, integers below 2**53 into a double one), and a column whose
type would otherwise change is refused with its name and both types.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from include.errors import DataError
from include.storage import Window

log = logging.getLogger(__name__)

DATE = "_event_date"  # the partition column; a leading underscore keeps it clear of user columns
COMMIT_RETRIES = 5


class CuratedError(DataError):
    """A batch cannot be written to the curated table as it is (a column changed type, a
    replacement would drop too many rows, the storage URL is not one Delta Lake supports)."""


@dataclass(frozen=True)
class Commit:
    """Who writes a window and why: goes into the Delta commit's metadata."""

    operation: str  # publish | accept | restore | migrate
    dag_id: str | None = None
    run_id: str | None = None
    user: str | None = None
    reason: str | None = None
    force: bool = False

    def metadata(self, window: Window, rows: int, extra: dict | None = None) -> dict[str, str]:
        fields = {
            "driftloop.operation": self.operation,
            "driftloop.dag_id": self.dag_id,
            "driftloop.run_id": self.run_id,
            "driftloop.user": self.user,
            "driftloop.reason": self.reason,
            "driftloop.force": "true" if self.force else None,
            "driftloop.window_start": window.start.isoformat(),
            "driftloop.window_end": window.end.isoformat(),
            "driftloop.rows": str(rows),
            **{f"driftloop.{k}": str(v) for k, v in (extra or {}).items()},
        }
        return {k: str(v) for k, v in fields.items() if v is not None}


def table_uri(root: str, protocol: str | tuple) -> str:
    """The Delta table's URI under the storage root (``root`` as fsspec gives it, without the
    protocol for object stores).

    Raises:
        CuratedError: the storage is on a file system delta-rs cannot write (e.g. ``memory://``).
    """
    protocols = (protocol,) if isinstance(protocol, str) else tuple(protocol)
    if "file" in protocols or "local" in protocols:
        return f"{root}/curated"
    for scheme in ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"):
        if scheme in protocols:
            return f"{scheme}://{root}/curated"
    raise CuratedError(
        f"storage on {protocols[0]}:// cannot hold the curated Delta table: use a local path or s3://, gs://, az:// (delta-rs)"
    )


def storage_options() -> dict[str, str] | None:
    """delta-rs reads object-store credentials from the environment (``AWS_*``) by itself; an
    S3-protocol server on plain HTTP (MinIO, a local stand-in) needs ``AWS_ALLOW_HTTP``."""
    import os

    endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3")
    if endpoint and endpoint.startswith("http://"):
        return {"AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true"}
    return None


def event_dates(stamps: pd.Series) -> pd.Series:
    """``YYYY-MM-DD`` of each timestamp. Formatted once per distinct day: ``strftime`` on a million
    rows takes seconds, longer than the whole Delta write."""
    codes, days = pd.factorize(stamps.dt.normalize())
    names = pd.Index(days).strftime("%Y-%m-%d").to_numpy(dtype=object)
    return pd.Series(names[codes], index=stamps.index, dtype="str")


def _quote(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def window_predicate(window: Window, timestamp: str, holds: Iterable[Window] = ()) -> str:
    """The SQL predicate of the rows a window owns: its days (partition pruning) and its span,
    minus the spans ``holds`` keeps out (open quarantine entries of other windows)."""
    days = window.days()
    ts = _quote(timestamp)

    def span(w: Window) -> str:
        return f"{ts} >= '{w.start.isoformat()}' AND {ts} < '{w.end.isoformat()}'"

    parts = [f"{DATE} >= '{days[0]}' AND {DATE} <= '{days[-1]}'", span(window)]
    parts += [f"NOT ({span(h)})" for h in holds]
    return " AND ".join(f"({p})" for p in parts)


class CuratedTable:
    """The curated Delta table of one storage root."""

    def __init__(self, uri: str, timestamp: str, id_column: str, floats: Iterable[str] = ()) -> None:
        self.uri = uri
        self.timestamp = timestamp
        self.id = id_column
        self.floats = set(floats)  # the config's numeric features: always doubles
        self.options = storage_options()

    # -- reading ---------------------------------------------------------------------------
    def _table(self, version: int | None = None):
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        try:
            table = DeltaTable(self.uri, storage_options=self.options)
        except TableNotFoundError:
            return None
        if version is not None:
            table.load_as_version(version)
        return table

    def exists(self) -> bool:
        return self._table() is not None

    def version(self) -> int | None:
        table = self._table()
        return None if table is None else table.version()

    def read(self, window: Window, columns: Iterable[str] | None = None, version: int | None = None) -> pd.DataFrame:
        """The rows of ``window`` (as of ``version``, default the latest); an empty frame if none."""
        table = self._table(version)
        if table is None:
            return pd.DataFrame()
        wanted = None
        if columns is not None:
            names = set(_arrow_schema(table).names)
            wanted = [c for c in dict.fromkeys([*columns, self.timestamp]) if c in names]
        frame = table.to_pandas(columns=wanted, filters=[(DATE, "in", window.days())])
        frame = frame.drop(columns=[DATE], errors="ignore")
        if frame.empty:
            return frame.iloc[0:0].reset_index(drop=True)
        frame = frame[window.contains(frame[self.timestamp])]
        frame = frame.sort_values([self.timestamp, self.id], kind="stable").reset_index(drop=True)
        return frame[list(columns)] if columns is not None else frame

    def count(self, window: Window) -> int:
        return len(self.read(window, [self.id]))

    def history(self, limit: int | None = None) -> list[dict]:
        """The table's commits, newest first: version, time, operation and driftloop's metadata."""
        table = self._table()
        if table is None:
            return []
        out = []
        for entry in table.history(limit):
            out.append(
                {
                    "version": entry.get("version"),
                    "timestamp": pd.Timestamp(entry.get("timestamp"), unit="ms", tz="UTC").isoformat(),
                    "operation": entry.get("operation"),
                    "rows_added": (entry.get("operationMetrics") or {}).get("num_added_rows"),
                    **{k: v for k, v in entry.items() if k.startswith("driftloop.")},
                }
            )
        return out

    # -- writing ---------------------------------------------------------------------------
    def conform(self, frame: pd.DataFrame, table=None) -> pd.DataFrame:
        """The batch with the types the table stores (see the module docstring).

        Raises:
            CuratedError: a column would change type, or the batch has a column named like the
                partition column.
        """
        import pyarrow as pa

        table = table if table is not None else self._table()
        if DATE in frame.columns:
            raise CuratedError(f"column {DATE!r} is reserved for the curated table's event-date partition; rename it upstream")
        out = frame.reset_index(drop=True).copy()
        for col in out.columns:
            values = out[col]
            if col == self.timestamp:
                continue
            if pd.api.types.is_bool_dtype(values.dtype):
                out[col] = values.astype("boolean")
            elif col in self.floats and pd.api.types.is_numeric_dtype(values.dtype):
                out[col] = values.astype("float64")
            elif values.dtype == object and values.dropna().map(type).nunique() > 1:
                kinds = sorted({type(v).__name__ for v in values.dropna()})
                raise CuratedError(f"column {col!r} mixes value types {kinds} in one batch; it cannot be stored in one typed column")
        out[self.timestamp] = out[self.timestamp].astype("datetime64[us, UTC]")
        out[DATE] = event_dates(out[self.timestamp])
        if table is None:
            return out
        existing = {f.name: f.type for f in _arrow_schema(table)}
        batch = pa.Schema.from_pandas(out, preserve_index=False)
        for field in batch:
            have = existing.get(field.name)
            if have is None or field.name == DATE:
                continue
            if out[field.name].isna().all():
                continue  # an all-null column takes the table's type
            if _same_kind(have, field.type):
                continue
            values = out[field.name]
            if pa.types.is_integer(have) and pa.types.is_floating(field.type) and (values.dropna() % 1 == 0).all():
                out[field.name] = values.astype("Int64")  # whole numbers read as floats (a missing value in a CSV)
            elif pa.types.is_floating(have) and pa.types.is_integer(field.type) and (values.dropna().abs() < 2**53).all():
                out[field.name] = values.astype("float64")  # exact: below 2**53
            else:
                raise CuratedError(
                    f"column {field.name!r} is {field.type} in this batch but {have} in the curated table "
                    f"({self.uri}); fix the upstream type, or keep it out of the files"
                )
        return out

    def replace(
        self,
        frame: pd.DataFrame,
        window: Window,
        commit: Commit,
        holds: Iterable[Window] = (),
        max_drop: float = 1.0,
        extra: dict | None = None,
    ) -> dict:
        """Replaces the rows of ``window`` (minus the spans in ``holds``) with ``frame`` in one commit.

        Args:
            frame: the new rows of the window (all inside it, outside ``holds``).
            window: the span to replace.
            commit: who writes and why (commit metadata).
            holds: spans inside the window whose curated rows must stay as they are.
            max_drop: the largest share of the window's curated rows the replacement may drop
                (ids curated now that the new rows lack) unless ``commit.force``.
            extra: more metadata for the commit (e.g. the quarantine entry an accept curates).

        Returns:
            ``{"version", "rows", "replaced", "dropped"}``.

        Raises:
            CuratedError: the replacement would drop too many rows, or a column changed type.
        """
        from deltalake import CommitProperties, write_deltalake
        from deltalake.exceptions import CommitFailedError

        holds = list(holds)
        table = self._table()
        if table is None:
            current = pd.DataFrame(columns=[self.id])
        else:  # one read; with holds, the times tell which of the window's rows they keep
            current = self.read(window, [self.id, self.timestamp] if holds else [self.id])
            if holds and not current.empty:
                held = pd.Series(False, index=current.index)
                for h in holds:
                    held |= h.contains(current[self.timestamp])
                current = current[~held][[self.id]]
        new_ids = frame[self.id] if self.id in frame.columns else pd.Series([], dtype=object)
        dropped = int((~current[self.id].isin(new_ids)).sum()) if len(current) else 0
        share = dropped / len(current) if len(current) else 0.0
        if share > max_drop and not commit.force:
            raise CuratedError(
                f"re-ingesting [{window.start.isoformat()}, {window.end.isoformat()}) would drop {dropped} of the "
                f"{len(current)} rows curated for it ({share:.0%} > max_curated_drop {max_drop:.0%}): the landing files "
                f'may have been removed by retention. Nothing was changed. To replace anyway, trigger ingest with {{"force": true}}.'
            )
        if frame.empty:  # a forced re-ingest of a window whose landing files are gone: delete its rows
            properties = CommitProperties(custom_metadata=commit.metadata(window, 0, {**(extra or {}), "dropped": dropped}))
            if table is not None and dropped:
                table.delete(predicate=window_predicate(window, self.timestamp, holds), commit_properties=properties)
            log.info("curated %s: emptied (%d rows dropped), version %s", window.key, dropped, self.version())
            return {"version": self.version(), "rows": 0, "replaced": len(current), "dropped": dropped}
        data = self.conform(frame, table)
        properties = CommitProperties(custom_metadata=commit.metadata(window, len(data), {**(extra or {}), "dropped": dropped}))
        for attempt in range(COMMIT_RETRIES):
            try:
                write_deltalake(
                    self.uri,
                    data,
                    mode="overwrite" if table is not None else "append",
                    predicate=window_predicate(window, self.timestamp, holds) if table is not None else None,
                    partition_by=[DATE],
                    schema_mode="merge",
                    storage_options=self.options,
                    commit_properties=properties,
                )
                break
            except CommitFailedError as err:  # another writer committed first: try again on its version
                if attempt == COMMIT_RETRIES - 1:
                    raise
                log.warning("curated table commit conflict (%s); retrying", err)
                time.sleep(0.2 * (attempt + 1))
                table = self._table()
        version = self.version()
        log.info(
            "curated %s: %d rows replace %d (%d dropped) in one commit, version %s", window.key, len(data), len(current), dropped, version
        )
        return {"version": version, "rows": len(data), "replaced": len(current), "dropped": dropped}


def _arrow_schema(table):
    """The table's schema as a pyarrow schema (delta-rs hands out arro3 objects)."""
    import pyarrow as pa

    return pa.schema(table.schema().to_arrow())


def _same_kind(a, b) -> bool:
    """Arrow types a Delta column keeps: equal, or the same family (string/large_string,
    timestamp units and zones delta-rs normalises)."""
    import pyarrow as pa

    if a == b:
        return True
    checks = (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view)
    if any(c(a) for c in checks) and any(c(b) for c in checks):
        return True
    if pa.types.is_timestamp(a) and pa.types.is_timestamp(b):
        return True
    if pa.types.is_integer(a) and pa.types.is_integer(b):
        return True
    if pa.types.is_floating(a) and pa.types.is_floating(b):
        return True
    return pa.types.is_boolean(a) and pa.types.is_boolean(b)


def restore_window(table: CuratedTable, window: Window, version: int, commit: Commit) -> dict:
    """Puts back the rows ``window`` had at table ``version``, in one new commit (the undo of a
    bad re-ingest or accept). Other windows are left as they are now; nothing is deleted from the
    table's history, so a restore can itself be undone.

    Returns:
        ``{"version", "rows", "replaced", "dropped", "from_version"}``.

    Raises:
        CuratedError: ``version`` does not exist.
    """
    latest = table.version()
    if latest is None or not 0 <= version <= latest:
        raise CuratedError(f"the curated table {table.uri} has no version {version} (latest: {latest})")
    rows = table.read(window, version=version)
    result = table.replace(rows, window, Commit(**{**commit.__dict__, "force": True}), extra={"restored_from": version})
    return {**result, "from_version": version}
