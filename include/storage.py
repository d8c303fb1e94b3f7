"""Where driftloop keeps its data: landing (read-only), curated, quarantine, predictions, verdicts.

Everything goes through fsspec, so ``storage`` and ``data.landing`` may be local paths or URLs
(``s3://``, ``gcs://``, ``memory://``). The pipeline never writes to, moves or deletes a landing
file. Writes are atomic where the filesystem allows it: a file is written beside its target and
then moved over it, so a reader never sees half a file.

Layout under ``storage``::

    _manifest/landing.json                     time span of each landing file (read once)
    curated/date=YYYY-MM-DD/data.parquet       gated rows, partitioned by event date
    quarantine/<start>__<end>/batch.parquet    a rejected batch, with report.json and report.md
    quarantine/resolved/<start>__<end>__<n>/   the same, once a later run of the window passed
    quarantine/unplaced/<file>__<size>__<mtime>/ a copy of a landing file without the timestamp column
    predictions/<start>__<end>.parquet         scores of an interval, one row per id
    verdicts/<start>__<end>.json               the monitor's drift verdict of an interval
    reports/<start>__<end>/drift.html          the Evidently report of an interval
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import fsspec
import pandas as pd

log = logging.getLogger(__name__)


def safe_name(text: str) -> str:
    """``text`` as a file name or key that every store and MLflow tag accepts."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


LANDING_SUFFIXES = (".csv", ".parquet", ".pq")


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
    def parse(cls, start: str | datetime, end: str | datetime) -> Window:
        return cls(to_utc(start), to_utc(end))

    @property
    def key(self) -> str:
        """A file-name-safe key, e.g. ``20260105T000000Z__20260112T000000Z``."""
        return f"{self.start:%Y%m%dT%H%M%SZ}__{self.end:%Y%m%dT%H%M%SZ}"

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


def normalize_timestamps(frame: pd.DataFrame, column: str, errors: str = "raise") -> pd.DataFrame:
    """Returns a copy whose ``column`` is a UTC datetime; naive values are read as UTC.

    Args:
        frame: the rows.
        column: the timestamp column.
        errors: ``"raise"``, or ``"coerce"`` to turn values that are not timestamps into NaT (the
            gate's not-null check on the timestamp then names them).

    Raises:
        ValueError: (``errors="raise"``) naming the column and an example of a bad value.
    """
    out = frame.copy()
    values = out[column]
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
    else:
        parsed = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
        bad = parsed.isna() & values.notna()
        if bad.any() and errors == "raise":
            raise ValueError(f"column {column!r}: {int(bad.sum())} value(s) are not timestamps, e.g. {values[bad].iloc[0]!r}")
    if getattr(parsed.dt, "tz", None) is None:
        parsed = parsed.dt.tz_localize("UTC")
    else:
        parsed = parsed.dt.tz_convert("UTC")
    out[column] = parsed.astype("datetime64[us, UTC]")
    return out


class Storage:
    """The driftloop storage root and the landing zone, over fsspec."""

    def __init__(self, root: str, landing: str, timestamp: str, labels: str | None = None) -> None:
        self.fs, self.root = fsspec.core.url_to_fs(root)
        self.root = self.root.rstrip("/")
        self.landing_fs, self.landing = fsspec.core.url_to_fs(landing)
        self.landing = self.landing.rstrip("/")
        self.labels = labels
        self.timestamp = timestamp

    @classmethod
    def from_settings(cls, settings) -> Storage:
        data = settings.data
        return cls(settings.storage, data.landing, data.timestamp, data.labels)

    # -- generic helpers -------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def _atomic_write(self, path: str, write) -> str:
        parent = path.rsplit("/", 1)[0]
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
            return pd.read_parquet(handle)

    def exists(self, path: str) -> bool:
        return self.fs.exists(path)

    # -- landing ---------------------------------------------------------------------------
    def _landing_files(self) -> list[dict]:
        if not self.landing_fs.exists(self.landing):
            raise FileNotFoundError(f"landing zone {self.landing} does not exist")
        found = []
        for info in self.landing_fs.find(self.landing, detail=True).values():
            name = info["name"]
            hidden = "/." in "/" + name[len(self.landing) :].lstrip("/")  # temp files of writers in progress
            if info.get("type") == "file" and name.lower().endswith(LANDING_SUFFIXES) and not hidden:
                found.append(info)
        return sorted(found, key=lambda i: i["name"])

    def _read_landing_file(self, name: str, columns: list[str] | None = None) -> pd.DataFrame:
        with self.landing_fs.open(name, "rb") as handle:
            if name.lower().endswith(".csv"):
                frame = pd.read_csv(handle, usecols=columns)
            else:
                frame = pd.read_parquet(handle, columns=columns)
        return frame

    def _index_file(self, name: str) -> dict:
        try:
            raw = self._read_landing_file(name, [self.timestamp])
        except (KeyError, ValueError) as err:
            # no timestamp column: the file belongs to no window; ingest quarantines a copy once
            reason = (
                f"no column {self.timestamp!r}"
                if isinstance(err, KeyError) or "not in" in str(err) or "match" in str(err)
                else "unreadable"
            )
            return {"rows": 0, "min": None, "max": None, "bad_timestamps": 0, "error": f"{reason} ({type(err).__name__}: {err})"}
        stamps = normalize_timestamps(raw, self.timestamp, errors="coerce")[self.timestamp]
        valid = stamps.dropna()
        return {
            "rows": len(stamps),
            "min": valid.min().isoformat() if len(valid) else None,
            "max": valid.max().isoformat() if len(valid) else None,
            # rows whose timestamp is not a timestamp travel with every window the file overlaps,
            # so the gate's not-null check on the timestamp quarantines them with their batch
            "bad_timestamps": int(stamps.isna().sum()),
        }

    def landing_manifest(self) -> dict[str, dict]:
        """Returns ``{file: {size, mtime, rows, min, max}}`` for every landing file.

        A file is opened only the first time it is seen (or when its size or modification time
        changes); after that its time span comes from the manifest kept under ``_manifest/``.
        """
        manifest_path = self.path("_manifest", "landing.json")
        manifest = self.read_json(manifest_path) if self.exists(manifest_path) else {}
        changed = False
        current = {}
        for info in self._landing_files():
            name = info["name"]
            signature = {"size": info.get("size"), "mtime": str(info.get("mtime") or info.get("LastModified") or "")}
            entry = manifest.get(name)
            if entry is None or {k: entry.get(k) for k in signature} != signature:
                entry = {**signature, **self._index_file(name)}
                changed = True
                log.info("manifest: indexed %s (%d rows)", name, entry["rows"])
            if entry.get("error") and entry.get("quarantined"):
                log.warning("landing file %s belongs to no window: %s (see %s)", name, entry["error"], entry["quarantined"])
            current[name] = entry
        if changed or set(current) != set(manifest):
            self.write_json(current, manifest_path)
        return current

    def landing_files_for(self, window: Window) -> list[str]:
        """The landing files whose time span overlaps ``window``."""
        files = []
        for name, entry in self.landing_manifest().items():
            if entry["rows"] == 0 or entry["min"] is None:
                continue
            if to_utc(entry["min"]) < window.end and to_utc(entry["max"]) >= window.start:
                files.append(name)
        return files

    def read_landing(self, window: Window) -> pd.DataFrame:
        """The landing rows with ``start <= timestamp < end``, from the files that overlap the window,
        plus those files' rows whose timestamp is missing or unreadable (the gate rejects them).

        Returns an empty frame (with no columns) when no file overlaps.
        """
        frames = []
        for name in self.landing_files_for(window):
            frame = normalize_timestamps(self._read_landing_file(name), self.timestamp, errors="coerce")
            stamps = frame[self.timestamp]
            frames.append(frame[window.contains(stamps) | stamps.isna()])
        if not frames:
            return pd.DataFrame()
        return pd.concat(frames, ignore_index=True)

    # -- curated ---------------------------------------------------------------------------
    def _partition(self, day: str) -> str:
        return self.path("curated", f"date={day}", "data.parquet")

    def write_curated(self, frame: pd.DataFrame, window: Window, id_column: str) -> list[str]:
        """Stores gated rows by event date. Rows already curated for the same window, or with the
        same ids, are replaced, so re-running an interval never duplicates a row.

        Returns the partition paths written.
        """
        days = {
            d.strftime("%Y-%m-%d") for d in pd.date_range(pd.Timestamp(window.start).normalize(), window.end, freq="D", inclusive="left")
        }
        days |= set(frame[self.timestamp].dt.strftime("%Y-%m-%d"))
        written = []
        by_day = dict(tuple(frame.groupby(frame[self.timestamp].dt.strftime("%Y-%m-%d"))))
        for day in sorted(days):
            path = self._partition(day)
            new = by_day.get(day, frame.iloc[0:0])
            if self.exists(path):
                old = self.read_parquet(path)
                keep = ~window.contains(old[self.timestamp]) & ~old[id_column].isin(new[id_column])
                merged = pd.concat([old[keep], new], ignore_index=True) if keep.any() else new
            else:
                merged = new
            if merged.empty and not self.exists(path):
                continue
            merged = merged.sort_values([self.timestamp, id_column], kind="stable")
            written.append(self.write_parquet(merged, path))
        return written

    def read_curated(self, window: Window, columns: Iterable[str] | None = None) -> pd.DataFrame:
        """The curated rows of ``window`` (empty frame if none)."""
        frames = []
        for day in pd.date_range(pd.Timestamp(window.start).normalize(), window.end, freq="D", inclusive="left"):
            path = self._partition(day.strftime("%Y-%m-%d"))
            if self.exists(path):
                frame = self.read_parquet(path)
                frames.append(frame[window.contains(frame[self.timestamp])])
        if not frames:
            return pd.DataFrame()
        out = pd.concat(frames, ignore_index=True)
        return out[list(columns)] if columns is not None else out

    # -- quarantine, predictions, verdicts, reports -----------------------------------------
    def quarantine(self, frame: pd.DataFrame, window: Window, report: dict, report_md: str) -> str:
        """Keeps a rejected batch with its report; re-running the same window replaces them."""
        folder = self.path("quarantine", window.key)
        self.write_parquet(frame, f"{folder}/batch.parquet")
        self.write_json(report, f"{folder}/report.json")
        self.write_text(report_md, f"{folder}/report.md")
        return folder

    def resolve_quarantine(self, window: Window) -> str | None:
        """Moves the quarantine entry of a window that has since passed the gate (a re-run after
        the landing data was fixed) to ``quarantine/resolved/<window>__<n>/``: nothing is deleted,
        and ``quarantine/<window>`` again means "this window is blocked now".

        Returns the new folder, or None when the window had no entry."""
        folder = self.path("quarantine", window.key)
        if not self.exists(folder):
            return None
        done = self.path("quarantine", "resolved")
        n = len(self.fs.glob(f"{done}/{window.key}__*")) + 1 if self.exists(done) else 1
        target = f"{done}/{window.key}__{n}"
        self.fs.makedirs(done, exist_ok=True)
        self.fs.mv(folder, target, recursive=True)
        return target

    def quarantine_unplaced(self) -> list[dict]:
        """Quarantines a copy of each landing file that belongs to no window (it has no
        ``timestamp`` column), once per version of the file, with a report naming the file, the
        column and the rule. The landing file itself stays where it is.

        Returns the files quarantined by this call: ``[{"file", "error", "quarantine"}]``.
        """
        manifest_path = self.path("_manifest", "landing.json")
        if not self.exists(manifest_path):
            return []
        manifest = self.read_json(manifest_path)
        done = []
        for name, entry in sorted(manifest.items()):
            if not entry.get("error") or entry.get("quarantined"):
                continue
            base = name.rsplit("/", 1)[-1]
            version = f"{entry['size']}__{entry.get('mtime') or ''}"  # a re-delivery gets its own folder
            folder = self.path("quarantine", "unplaced", safe_name(f"{base}__{version}"))
            with self.landing_fs.open(name, "rb") as handle:
                self.write_bytes(handle.read(), f"{folder}/{base}")
            rule = "the event-time column must exist" if entry["error"].startswith("no column") else "the file must be readable"
            report = {"file": name, "column": self.timestamp, "rule": rule, "error": entry["error"]}
            self.write_json(report, f"{folder}/report.json")
            self.write_text(
                f"# Landing file not ingested\n\n- file: `{name}`\n- column: `{self.timestamp}`\n"
                f"- rule: {rule}, or no window can contain the file's rows\n"
                f"- error: {entry['error']}\n\nThe file was copied here; the landing zone is unchanged. Deliver it again "
                f"with a `{self.timestamp}` column and the next ingest of its window picks it up.\n",
                f"{folder}/report.md",
            )
            entry["quarantined"] = folder
            done.append({"file": name, "error": entry["error"], "quarantine": folder})
            log.error("landing file %s belongs to no window (%s); a copy and a report are in %s", name, entry["error"], folder)
        if done:
            self.write_json(manifest, manifest_path)
        return done

    def staging_path(self, window: Window) -> str:
        return self.path("staging", f"{window.key}.parquet")

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

    def read_labels(self, id_column: str, target: str, ids: pd.Series) -> pd.DataFrame:
        """Later-arriving labels (files with id + target) for the given ids."""
        if not self.labels:
            return pd.DataFrame(columns=[id_column, target])
        fs, root = fsspec.core.url_to_fs(self.labels)
        if not fs.exists(root):
            return pd.DataFrame(columns=[id_column, target])
        frames = []
        for name in sorted(fs.find(root)):
            if not name.lower().endswith(LANDING_SUFFIXES):
                continue
            with fs.open(name, "rb") as handle:
                frame = pd.read_csv(handle) if name.lower().endswith(".csv") else pd.read_parquet(handle)
            frames.append(frame[[id_column, target]][frame[id_column].isin(ids)])
        if not frames:
            return pd.DataFrame(columns=[id_column, target])
        return pd.concat(frames, ignore_index=True).drop_duplicates(id_column, keep="last")
