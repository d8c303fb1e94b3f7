"""The landing zone: files that upstream systems drop, read-only to driftloop, and the manifest
that accounts for every row in them.

The manifest (``<storage>/_manifest/landing.json``) records, per landing file (name, size, mtime):
its rows, the event days it has rows on, how many timestamps cannot be read, which published
windows it was curated in (``covered``) and which published windows it has rows in but was not
read for (``late``: it arrived or changed after them). It also records every published window and
the files it was read from. A file is opened only when first seen or changed.

Event times are parsed with ``data.timestamp_format`` exactly: a value the format cannot read
becomes NaT and the gate names it; nothing is guessed.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import pandas as pd

from include.storage import Storage, Window, is_data_file, open_fs, parquet_frame, to_utc

if TYPE_CHECKING:
    from include.config import Settings

log = logging.getLogger(__name__)

MANIFEST_VERSION = 2


def parse_timestamps(values: pd.Series, fmt: str = "iso") -> pd.Series:
    """Event times as UTC (``datetime64[us, UTC]``), NaT where ``fmt`` cannot read a value.

    Args:
        values: the column as read from a file.
        fmt: ``iso`` (ISO 8601 text, or an already typed timestamp column), ``epoch_s``,
            ``epoch_ms``, or a strftime pattern. Values without a zone are UTC.
    """
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
    elif fmt in ("epoch_s", "epoch_ms"):
        numbers = pd.to_numeric(values, errors="coerce") if not pd.api.types.is_numeric_dtype(values) else values
        if pd.api.types.is_bool_dtype(numbers):
            numbers = pd.Series(float("nan"), index=values.index)
        parsed = pd.to_datetime(numbers.astype("float64"), unit="s" if fmt == "epoch_s" else "ms", utc=True, errors="coerce")
    else:
        text = (
            values.astype("string") if not pd.api.types.is_numeric_dtype(values) else pd.Series(pd.NA, index=values.index, dtype="string")
        )
        if fmt == "iso":
            parsed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
        else:
            parsed = pd.to_datetime(text, format=fmt, utc=True, errors="coerce")
    if getattr(parsed.dt, "tz", None) is None:
        parsed = parsed.dt.tz_localize("UTC")
    else:
        parsed = parsed.dt.tz_convert("UTC")
    return parsed.astype("datetime64[us, UTC]")


def read_table(fs, name: str, columns: list[str] | None = None) -> pd.DataFrame:
    """A CSV or Parquet file (by its suffix; anything else is read as Parquet) as it is."""
    with fs.open(name, "rb") as handle:
        if name.lower().endswith(".csv"):
            return pd.read_csv(handle, usecols=columns)
        return parquet_frame(handle, columns)


def _day_spans(stamps: pd.Series) -> list[list[str]]:
    """The event days a file has rows on, as merged ``[first, last]`` day spans."""
    days = sorted(pd.Series(stamps.dropna().dt.normalize().unique()))
    spans: list[list[pd.Timestamp]] = []
    for day in days:
        if spans and day - spans[-1][1] <= pd.Timedelta(days=1):
            spans[-1][1] = day
        else:
            spans.append([day, day])
    return [[a.strftime("%Y-%m-%d"), b.strftime("%Y-%m-%d")] for a, b in spans]


def _overlaps_days(spans: list[list[str]], days: list[str]) -> bool:
    """Whether a file's day spans reach any of ``days`` (a window's ``Window.days()``)."""
    first, last = pd.Timestamp(days[0], tz="UTC"), pd.Timestamp(days[-1], tz="UTC")
    return any(pd.Timestamp(a, tz="UTC") <= last and pd.Timestamp(b, tz="UTC") >= first for a, b in spans)


def merge_spans(spans: list[list[str]]) -> list[list[str]]:
    """Merged ``[start, end)`` ISO spans (touching or overlapping spans become one)."""
    out: list[list[datetime]] = []
    for start, end in sorted((to_utc(s), to_utc(e)) for s, e in spans):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [[s.isoformat(), e.isoformat()] for s, e in out]


def _inside(window: Window, spans: list[list[str]]) -> bool:
    return any(to_utc(s) <= window.start and window.end <= to_utc(e) for s, e in spans)


@dataclass
class Batch:
    """A window's landing rows and the account of every row of the files they came from."""

    frame: pd.DataFrame  # window rows (+ rows whose time cannot be read), timestamps parsed
    raw: dict[str, pd.DataFrame] = field(default_factory=dict)  # the same rows per file, as read
    files: dict[str, dict] = field(default_factory=dict)  # file -> {size, mtime} read
    account: dict = field(default_factory=dict)


class LandingZone:
    """Reads the landing zone of a config and keeps its manifest under ``storage``."""

    def __init__(self, storage: Storage, landing: str, timestamp: str, fmt: str = "iso") -> None:
        self.storage = storage
        self.fs, self.root = open_fs(landing)
        self.root = self.root.rstrip("/")
        self.timestamp = timestamp
        self.format = fmt
        self.path = storage.path("_manifest", "landing.json")

    @classmethod
    def from_settings(cls, settings: Settings, storage: Storage | None = None) -> LandingZone:
        data = settings.data
        return cls(storage or Storage.from_settings(settings), data.landing, data.timestamp, data.timestamp_format)

    # -- files -----------------------------------------------------------------------------
    def _listing(self) -> list[dict]:
        if not self.fs.exists(self.root):
            raise FileNotFoundError(f"landing zone {self.root} does not exist")
        found = []
        for info in self.fs.find(self.root, detail=True).values():
            if info.get("type") == "file" and is_data_file(self.root, info["name"]):
                found.append(info)
        return sorted(found, key=lambda i: i["name"])

    def read_file(self, name: str, columns: list[str] | None = None) -> pd.DataFrame:
        """A landing file as it is (CSV or Parquet)."""
        return read_table(self.fs, name, columns)

    def read_bytes(self, name: str) -> bytes:
        with self.fs.open(name, "rb") as handle:
            return handle.read()

    # -- manifest --------------------------------------------------------------------------
    def load(self) -> dict:
        """The manifest as stored (a version-1 manifest, a plain ``{file: entry}``, is upgraded)."""
        if not self.storage.exists(self.path):
            return {"version": MANIFEST_VERSION, "files": {}, "published": {}}
        raw = self.storage.read_json(self.path)
        if raw.get("version") != MANIFEST_VERSION:
            # version 1 kept only spans: index every file again, nothing published is known
            return {"version": MANIFEST_VERSION, "files": {}, "published": {}}
        return raw

    def save(self, manifest: dict) -> None:
        self.storage.write_json(manifest, self.path)

    def _index(self, name: str, published: dict) -> dict:
        try:
            raw = self.read_file(name, [self.timestamp])
        except (KeyError, ValueError) as err:
            reason = (
                f"no column {self.timestamp!r}"
                if isinstance(err, KeyError) or "not in" in str(err) or "match" in str(err)
                else "unreadable"
            )
            return {"rows": None, "days": [], "bad_timestamps": 0, "error": f"{reason} ({type(err).__name__}: {err})"}
        values = raw[self.timestamp]
        stamps = parse_timestamps(values, self.format)
        bad = int(stamps.isna().sum())
        entry = {"rows": len(stamps), "days": _day_spans(stamps), "bad_timestamps": bad, "error": None, "covered": [], "late": {}}
        if len(stamps) and bad == len(stamps):
            example = values[values.notna()].iloc[0] if values.notna().any() else None
            example = example.item() if hasattr(example, "item") else example  # 1773101004, not np.int64(...)
            entry["error"] = (
                f"no readable timestamp: none of its {len(stamps)} values in column {self.timestamp!r} reads as "
                f"data.timestamp_format={self.format} (e.g. {example!r})"
            )
            return entry
        for key, record in published.items():
            window = Window.parse(record["start"], record["end"])
            if _overlaps_days(entry["days"], window.days()):
                rows = int(window.contains(stamps).sum())
                if rows:
                    entry["late"][key] = rows
        return entry

    def manifest(self) -> dict:
        """The manifest, with new and changed landing files indexed (and saved when it changed).

        Each call lists the landing zone (a LIST pass on an object store), so a task that needs
        the manifest more than once calls this once and hands the result to ``read``,
        ``late_files`` and ``Quarantine.unplaced`` (the last two change it in place and save it).
        """
        manifest = self.load()
        files, changed = manifest["files"], False
        current = {}
        for info in self._listing():
            name = info["name"]
            signature = {"size": info.get("size"), "mtime": str(info.get("mtime") or info.get("LastModified") or "")}
            entry = files.get(name)
            if entry is None or {k: entry.get(k) for k in signature} != signature:
                entry = {**signature, **self._index(name, manifest["published"])}
                changed = True
                log.info(
                    "manifest: indexed %s (%s rows%s)",
                    name,
                    entry["rows"],
                    f", late for {sorted(entry['late'])}" if entry.get("late") else "",
                )
            current[name] = entry
        if changed or set(current) != set(files):
            manifest["files"] = current
            self.save(manifest)
        return manifest

    def files_for(self, window: Window, manifest: dict | None = None) -> list[str]:
        """The landing files with rows on the window's days (files that belong to no window aside)."""
        manifest = manifest or self.manifest()
        days = window.days()
        return [n for n, e in manifest["files"].items() if not e.get("error") and e["rows"] and _overlaps_days(e["days"], days)]

    # -- reading a window ------------------------------------------------------------------
    def read(
        self, window: Window, now: datetime | None = None, holds: list[Window] | None = None, skew=None, manifest: dict | None = None
    ) -> Batch:
        """The window's rows from every file with rows on its days, plus those files' rows whose
        time cannot be read or lies in the future (the gate names them), and the account of every
        row of those files.

        Args:
            window: the span.
            now: the run's time; with ``skew``, rows later than ``now + skew`` are ``future``: they
                travel with the batch, and the gate's ``max_clock_skew`` rule rejects it.
            holds: spans of open quarantine entries of other windows: their rows stay out.
            skew: ``quality.max_clock_skew``.
            manifest: the manifest as ``manifest()`` returned it earlier in the same task (None:
                list the landing zone now).
        """
        holds = holds or []
        manifest = self.manifest() if manifest is None else manifest
        published = merge_spans([[r["start"], r["end"]] for r in manifest["published"].values()])
        frames, raw, files = [], {}, {}
        account = {"files": 0, "read": 0, "window": 0, "unreadable": 0, "held": 0, "published_elsewhere": 0, "pending": 0, "future": 0}
        for name in self.files_for(window, manifest):
            entry = manifest["files"][name]
            frame = self.read_file(name)
            stamps = parse_timestamps(frame[self.timestamp], self.format)
            inside = window.contains(stamps)
            held = pd.Series(False, index=frame.index)
            for h in holds:
                held |= h.contains(stamps)
            unreadable = stamps.isna()
            future = pd.Series(False, index=frame.index)
            if now is not None and skew is not None:
                future = ~inside & (stamps > pd.Timestamp(now) + skew)
            take = (inside & ~held) | unreadable | future
            outside = ~inside & ~unreadable & ~future
            elsewhere = pd.Series(False, index=frame.index)
            for s, e in published:
                elsewhere |= Window.parse(s, e).contains(stamps)
            account["files"] += 1
            account["read"] += len(frame)
            account["window"] += int((inside & ~held).sum())
            account["unreadable"] += int(unreadable.sum())
            account["held"] += int((inside & held).sum())
            account["published_elsewhere"] += int((outside & elsewhere).sum())
            account["pending"] += int((outside & ~elsewhere).sum())
            account["future"] += int(future.sum())
            files[name] = {"size": entry["size"], "mtime": entry["mtime"]}
            if take.any():
                rows = frame if take.all() else frame[take]  # (copy-on-write: no copy made here)
                raw[name] = rows.reset_index(drop=True)
                frames.append(rows.assign(**{self.timestamp: stamps[take]}))
        batch = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        return Batch(batch, raw, files, account)

    # -- publishing and lateness -----------------------------------------------------------
    def record_published(self, window: Window, files: dict[str, dict], record: dict) -> list[dict]:
        """Records that ``window`` was published from ``files`` (name -> size, mtime as read).

        Each of those files counts as curated for the window (its ``late`` marks inside the window
        go). A file indexed meanwhile (landed between the gate and now) that has rows in the window
        but was not read is marked late for it.

        Lists the landing zone and loads the manifest afresh on purpose (the publish is a task of
        its own, after the gate): files that landed since the gate are indexed here.

        Returns:
            The late files found by this call.
        """
        manifest = self.manifest()
        days = window.days()
        manifest["published"][window.key] = {**window.as_dict(), **record, "files": sorted(files)}
        found = []
        for name, entry in manifest["files"].items():
            if entry.get("error") or not entry["rows"]:
                continue
            read = files.get(name)
            if read is not None and read == {"size": entry["size"], "mtime": entry["mtime"]}:
                entry["covered"] = merge_spans([*entry.get("covered", []), [window.start.isoformat(), window.end.isoformat()]])
                entry["late"] = {k: v for k, v in entry.get("late", {}).items() if not _inside(Window.from_key(k), entry["covered"])}
            elif _overlaps_days(entry["days"], days) and not _inside(window, entry.get("covered", [])):
                stamps = parse_timestamps(self.read_file(name, [self.timestamp])[self.timestamp], self.format)
                rows = int(window.contains(stamps).sum())
                if rows:
                    entry.setdefault("late", {})[window.key] = rows
                    found.append({"file": name, "windows": [{**window.as_dict(), "rows": rows}], "rows": rows})
        self.save(manifest)
        return found

    def published_warnings(self, window: Window) -> list[str]:
        """The gate warnings (rules set to ``warn``) of the published windows that overlap ``window``."""
        out = []
        for record in self.load()["published"].values():
            span = Window.parse(record["start"], record["end"])
            if span.start < window.end and window.start < span.end:
                out += record.get("warnings") or []
        return out

    def late_files(self, mark: bool = True, manifest: dict | None = None) -> list[dict]:
        """Landing files with rows in windows published before they arrived (or changed), not yet
        reported: ``[{"file", "windows": [{"start", "end", "rows"}], "rows"}]``. With ``mark`` they
        are recorded as reported, so the next run stays quiet about them. ``manifest``: as
        ``manifest()`` returned it earlier in the same task (None: list the landing zone now)."""
        manifest = self.manifest() if manifest is None else manifest
        out = []
        for name, entry in sorted(manifest["files"].items()):
            pending = {k: v for k, v in (entry.get("late") or {}).items() if k not in entry.get("late_reported", [])}
            if not pending:
                continue
            windows = [{**Window.from_key(k).as_dict(), "rows": v} for k, v in sorted(pending.items())]
            out.append({"file": name, "windows": windows, "rows": sum(pending.values())})
            if mark:
                entry["late_reported"] = sorted({*entry.get("late_reported", []), *pending})
        if out and mark:
            self.save(manifest)
        return out

    def late_runs(self) -> list[tuple[str, Window]]:
        """``(key, window)`` for each window late rows wait for; the key names the window and the
        late files' versions, so it changes only when another late file (or version) comes."""
        manifest = self.manifest()
        found: dict[str, list[str]] = {}
        for name, entry in sorted(manifest["files"].items()):
            for key in entry.get("late") or {}:
                found.setdefault(key, []).append(f"{name}:{entry['size']}:{entry['mtime']}")
        out = []
        for key, files in sorted(found.items()):
            digest = hashlib.sha256("|".join(files).encode()).hexdigest()[:12]
            out.append((f"{key}__{digest}", Window.from_key(key)))
        return out
