"""Where driftloop keeps its data: landing (read-only), curated, quarantine, predictions, verdicts.

Everything goes through fsspec, so ``storage`` and ``data.landing`` may be local paths or URLs
(``s3://``, ``gcs://``, ``memory://``). The pipeline never writes to, moves or deletes a landing
file. Writes are atomic where the filesystem allows it: a file is written beside its target and
then moved over it, so a reader never sees half a file.

Layout under ``storage``::

    _manifest/landing.json                     every landing file (rows, event days, windows it was
                                               curated in or is late for) and every published window
    curated/                                   the curated Delta Lake table, partitioned by
                                               _event_date (include/curated.py)
    quarantine/<NNNN>__<start>__<end>/         a rejected batch: entry.json, report.json/.md, rows/
                                               (include/quarantine.py)
    quarantine/unplaced/<file>__<size>__<mtime>/ a copy of a landing file that belongs to no window
    staging/<start>__<end>__<run>.parquet      a gated batch between the gate and the publish of
            (+ .json)                          its run (keyed by run: two runs of one window never
                                               publish each other's batch)
    predictions/<start>__<end>.parquet         scores of an interval, one row per id
    verdicts/<start>__<end>.json               the monitor's drift verdict of an interval
    reports/<start>__<end>/drift.html          the Evidently report of an interval
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import fsspec
import pandas as pd
from fsspec.implementations.local import LocalFileSystem

if TYPE_CHECKING:
    from include.config import Settings

log = logging.getLogger(__name__)


def parquet_frame(source, columns: list[str] | None = None) -> pd.DataFrame:
    """A Parquet file as ``pd.read_parquet`` gives it (same dtypes, index from pandas' metadata),
    at about half its peak memory: each Arrow column is freed as soon as it is converted
    (``self_destruct``), columns are not consolidated into one block per dtype (a copy), and the
    Arrow memory pool hands what the conversion freed back to the system. Reading two 1M x 23
    frames: peak RSS 807 MB against 954 MB, in a quarter of the time (BENCHMARKS.md).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(source, columns=columns, use_pandas_metadata=True)
    frame = table.to_pandas(self_destruct=True, split_blocks=True)
    del table
    pa.default_memory_pool().release_unused()
    return frame


def open_fs(url: str):
    """The filesystem and path of ``url`` (a local path, ``s3://``, ...), with no listings cache:
    what other processes wrote (a verdict, a landed file) is seen at the next listing. s3fs caches a
    folder's listing for the life of the process otherwise, and a long-lived reader (the demo
    driver, a test or benchmark process) never saw a file written after its first look."""
    return fsspec.core.url_to_fs(url, use_listings_cache=False)


def safe_name(text: str) -> str:
    """``text`` as a file name or key that every store and MLflow tag accepts."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


LANDING_SUFFIXES = (".csv", ".parquet", ".pq")


def is_data_file(root: str, name: str) -> bool:
    """Whether ``name``, a file found under the folder ``root`` (landing zone or labels), is one
    driftloop reads: CSV or Parquet (``LANDING_SUFFIXES``), and not hidden, nor inside a hidden
    folder below ``root`` (a writer's temporary file in progress). Hidden folders above ``root``
    do not count."""
    hidden = "/." in "/" + name[len(root) :].lstrip("/")
    return name.lower().endswith(LANDING_SUFFIXES) and not hidden


@dataclass(frozen=True)
class Window:
    """A half-open span of event time, ``start <= t < end``, both UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", to_utc(self.start))
        object.__setattr__(self, "end", to_utc(self.end))
        if self.end <= self.start:
            raise ValueError(f"window end {self.end.isoformat()} is not after its start {self.start.isoformat()}")

    @classmethod
    def whole_days(cls, first: str | datetime, last: str | datetime) -> Window:
        """The whole UTC days from ``first``'s to ``last``'s, both included."""
        start = pd.Timestamp(to_utc(first)).floor("D")
        return cls(start.to_pydatetime(), (pd.Timestamp(to_utc(last)).floor("D") + pd.Timedelta(days=1)).to_pydatetime())

    @classmethod
    def parse(cls, start: str | datetime, end: str | datetime) -> Window:
        return cls(to_utc(start), to_utc(end))

    @classmethod
    def from_key(cls, key: str) -> Window:
        """The window a ``key`` names (the inverse of ``Window.key``)."""
        start, end = key.split("__")
        return cls.parse(pd.Timestamp(start), pd.Timestamp(end))

    @property
    def key(self) -> str:
        """A file-name-safe key, e.g. ``20260105T000000Z__20260112T000000Z``."""
        return f"{time_key(self.start)}__{time_key(self.end)}"

    def days(self) -> list[str]:
        """The UTC dates (``YYYY-MM-DD``) the window has instants on, first to last (the end is
        excluded: a window ending at midnight does not reach that day)."""
        first, last = self.start.date(), (self.end - timedelta(microseconds=1)).date()
        return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]

    def as_dict(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}

    def contains(self, series: pd.Series) -> pd.Series:
        return (series >= pd.Timestamp(self.start)) & (series < pd.Timestamp(self.end))


def to_utc(value: str | datetime | pd.Timestamp) -> datetime:
    """Reads an ISO string or datetime; a value without a zone is taken as UTC."""
    stamp = pd.Timestamp(value)
    if pd.isna(stamp):
        raise ValueError(f"{value!r} is not a timestamp")
    stamp = stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


def time_key(value: str | datetime | pd.Timestamp) -> str:
    """One instant as a file- and run-id-safe key in UTC, e.g. ``20260105T000000Z``."""
    return f"{to_utc(value):%Y%m%dT%H%M%SZ}"


def drift_retrain_run_id(end: str | datetime) -> str:
    """The Airflow run id of the retrain that answers the drift ending at ``end``: one per drift,
    so a second trigger for the same drift finds it and starts nothing."""
    return f"drift__{time_key(end)}"


class Storage:
    """The driftloop storage root, over fsspec (the landing zone is ``include.landing``; ``landing``
    is accepted for the callers that pass a config's paths positionally)."""

    def __init__(self, root: str, landing: str, timestamp: str, id_column: str = "id", numeric=()) -> None:
        self.fs, self.root = open_fs(root)
        self.root = self.root.rstrip("/")
        self.local = isinstance(self.fs, LocalFileSystem)
        self.timestamp = timestamp
        self.id_column = id_column
        self.numeric = tuple(numeric)  # stored as doubles in the curated table

    @classmethod
    def from_settings(cls, settings: Settings) -> Storage:
        data = settings.data
        return cls(settings.storage, data.landing, data.timestamp, data.id, data.numeric)

    # -- generic helpers -------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def _atomic_write(self, path: str, write) -> str:
        """Writes ``path`` whole or not at all. An object store's PUT is already that (an object
        appears when its upload completes); a local file is written aside and renamed."""
        parent = path.rsplit("/", 1)[0]
        if not self.local:
            with self.fs.open(path, "wb") as handle:
                write(handle)
            return path
        self.fs.makedirs(parent, exist_ok=True)
        tmp = f"{parent}/.tmp-{uuid.uuid4().hex}"
        with self.fs.open(tmp, "wb") as handle:
            write(handle)
        self.fs.mv(tmp, path)
        return path

    def write_parquet(self, frame: pd.DataFrame, path: str) -> str:
        return self._atomic_write(path, lambda h: frame.to_parquet(h, index=False))

    def write_bytes(self, payload: bytes, path: str) -> str:
        return self._atomic_write(path, lambda h: h.write(payload))

    def write_text(self, text: str, path: str) -> str:
        return self._atomic_write(path, lambda h: h.write(text.encode()))

    def write_json(self, payload: dict, path: str) -> str:
        return self.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str), path)

    def read_json(self, path: str) -> dict:
        with self.fs.open(path, "rb") as handle:
            return json.loads(handle.read())

    def read_parquet(self, path: str) -> pd.DataFrame:
        with self.fs.open(path, "rb") as handle:
            return parquet_frame(handle)

    def exists(self, path: str) -> bool:
        return self.fs.exists(path)

    # -- curated (a Delta Lake table: include/curated.py) -----------------------------------
    def curated(self, id_column: str | None = None):
        """The curated Delta table under this root."""
        from include.curated import CuratedTable, table_uri

        return CuratedTable(table_uri(self.root, self.fs.protocol), self.timestamp, id_column or self.id_column, self.numeric)

    def read_curated(self, window: Window, columns: Iterable[str] | None = None) -> pd.DataFrame:
        """The curated rows of ``window`` (empty frame if none)."""
        return self.curated().read(window, columns)

    def staging_path(self, window: Window, run_id: str, suffix: str = "parquet") -> str:
        """Where ``run_id``'s gated batch of ``window`` waits for its publish (``suffix`` json:
        what the gate found out about it)."""
        digest = hashlib.sha1(run_id.encode()).hexdigest()[:8]  # run ids that differ only in odd characters
        return self.path("staging", f"{window.key}__{safe_name(run_id)[:80]}-{digest}.{suffix}")

    def predictions_path(self, window: Window) -> str:
        return self.path("predictions", f"{window.key}.parquet")

    def verdict_path(self, window: Window) -> str:
        return self.path("verdicts", f"{window.key}.json")

    def report_path(self, window: Window, name: str) -> str:
        return self.path("reports", window.key, name)

    def verdicts(self) -> list[dict]:
        """Every recorded verdict, oldest interval first."""
        folder = self.path("verdicts")
        if not self.exists(folder):
            return []
        out = [self.read_json(p) for p in sorted(self.fs.glob(f"{folder}/*.json"))]
        return sorted(out, key=lambda v: (v["end"], v["start"]))
