"""Ingest: the landing rows of a window through the gate, then into the curated Delta table.

Two steps, so the Airflow task that publishes (and emits the curated Asset event) runs only after
the gate passed: ``check_landing`` (or ``check_accepted`` for an operator's accept of a quarantine
entry) validates and stages; ``publish`` replaces the window's curated rows in one commit.

Every row of the landing files a run reads is accounted for: rows read = rows curated (or
quarantined) for this window + rows held by an open quarantine entry of another window + rows of
windows already published + rows pending in windows not ingested yet. The balance is logged and
returned.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Literal, TypedDict

import pandas as pd

from include import quality, tracking
from include.curated import Commit, CuratedError
from include.landing import LandingZone, parse_timestamps
from include.quarantine import Quarantine, QuarantineError
from include.storage import Storage, Window

if TYPE_CHECKING:
    from include.config import Settings

log = logging.getLogger(__name__)


class RunInfo(TypedDict, total=False):
    """The Airflow run that does the work: recorded in quarantine entries and Delta commits."""

    dag_id: str
    run_id: str
    user: str | None
    at: str  # when the run was requested (ISO); also the run's "now" for the clock-skew rule


class GateResult(TypedDict):
    """What ingest's ``gate`` found: it may call for alerts (files of no window, late files, the
    findings of rules set to warn)."""

    kind: Literal["gate"]
    rows: int
    checks: int
    staged: str
    learned_from: dict | None
    unplaced: list[dict]
    late: list[dict]
    warnings: list[str]
    account: dict
    accepted: str | None


class PublishResult(TypedDict):
    kind: Literal["publish"]
    rows: int
    version: int | None
    dropped: int
    resolved: list[str]
    late: list[dict]
    account: dict


def _staged(storage: Storage, window: Window, run: RunInfo) -> tuple[str, str]:
    """The run's staged batch of ``window`` and its note (keyed by run: two runs of one window,
    interleaved as gate A, gate B, publish A, publish B, each publish their own batch)."""
    run_id = run.get("run_id") or "no-run"
    return storage.staging_path(window, run_id), storage.staging_path(window, run_id, "json")


def balance(account: dict, window: Window, outcome: str) -> str:
    """The one-line account of every row a run read; ``outcome`` is ``curated`` or ``quarantined``
    (rows whose time cannot be read, or lies in the future, are quarantined with the batch, or left
    in the entry by an accept)."""
    mine = account.get("window", 0) + account.get("unreadable", 0) + account.get("future", 0)
    parts = [
        f"{mine} {outcome}",
        f"{account.get('held', 0)} held (open quarantine of another window)",
        f"{account.get('published_elsewhere', 0)} in windows already published",
        f"{account.get('pending', 0)} pending in windows not ingested yet",
    ]
    total = mine + sum(account.get(k, 0) for k in ("held", "published_elsewhere", "pending"))
    ok = "balanced" if total == account.get("read", 0) else f"UNBALANCED: {total} accounted"
    span = f"[{window.start.isoformat()}, {window.end.isoformat()})"
    line = f"rows of {span}: read {account.get('read', 0)} from {account.get('files', 0)} file(s) = {' + '.join(parts)} ({ok})"
    odd = (("unreadable", "without a readable time"), ("future", "from the future"))
    extra = [f"{account[k]} {what}" for k, what in odd if account.get(k)]
    return line + (f"; of the {outcome}: {', '.join(extra)}" if extra else "")


def _schema_outcome(err: CuratedError) -> dict:
    """A gate outcome for a batch the curated table cannot take (a column changed type)."""
    return {
        "rule": "curated_table_schema",
        "column": None,
        "source": "curated",
        "severity": "block",
        "success": False,
        "expected": {"schema": "the curated table's column types"},
        "observed": str(err),
        "unexpected_count": None,
        "unexpected_percent": None,
        "element_count": None,
        "unexpected_values": [],
        "example_ids": [],
        "error": None,
    }


def check_landing(settings: Settings, window: Window, run: RunInfo, force: bool = False) -> GateResult:
    """Reads the window's landing rows and runs the gate.

    A batch that fails becomes a new numbered quarantine entry (its rows per file as read, and the
    report) and the error is raised again naming the entry. Rows inside the span of an open
    quarantine entry of another window stay out. Landing files are only ever read. A window whose
    landing files are all gone (retention) while the table holds rows for it is refused, as
    ``publish`` refuses a large drop, unless ``force``: then its rows are removed.

    Raises:
        DataQualityError: the batch failed; nothing was staged or curated.
        CuratedError: no landing rows are left for a window the table holds rows of.
    """
    storage = Storage.from_settings(settings)
    landing, jail = LandingZone.from_settings(settings, storage), Quarantine(storage)
    now = datetime.fromisoformat(run["at"]) if run.get("at") else None
    holds = jail.holds(window)
    # the landing zone is listed once per gate (the pool keeps other writers of the manifest out)
    manifest = landing.manifest()
    batch = landing.read(window, now, holds, settings.quality.max_clock_skew, manifest)
    table = storage.curated()
    if batch.frame.empty and (curated := table.count(window)):
        if not force:
            raise CuratedError(
                f"no landing rows are left for [{window.start.isoformat()}, {window.end.isoformat()}), which holds {curated} "
                "curated rows: the landing files may have been removed by retention. Nothing was changed. "
                'To empty the window anyway, trigger ingest with {"force": true}.'
            )
        return _stage(storage, window, run, batch, holds, [], jail, landing, manifest, 0, None, batch.frame)
    learned = tracking.champion_profile(settings.name)
    try:
        report = quality.validate(batch.frame, settings.data, window, learned, settings.quality, "ingest", now=now)
        try:
            staged_frame = table.conform(batch.frame)
        except CuratedError as err:
            report = quality.judge([*report["results"], _schema_outcome(err)], batch.frame, window, learned, "ingest")
    except quality.DataQualityError as err:
        entry = jail.add(window, batch.raw, batch.files, err.report, quality.report_markdown(err.report), dict(run))
        unplaced, late = jail.unplaced(landing, manifest), landing.late_files(manifest=manifest)
        line = balance(batch.account, window, "quarantined")
        log.error(line)
        also = "".join(f"\nalso: landing file {u['file']} belongs to no window ({u['error']}); see {u['quarantine']}" for u in unplaced)
        message = (
            f"{err}\nthe batch ({len(batch.frame)} rows) is quarantined as entry {entry['id']} in {jail.root}/{entry['id']}{also}\n{line}"
        )
        raise quality.DataQualityError(message, err.report, unplaced, late) from None
    return _stage(storage, window, run, batch, holds, report["warnings"], jail, landing, manifest, report["checks"], learned, staged_frame)


def _stage(
    storage: Storage, window: Window, run: RunInfo, batch, holds, warnings, jail, landing, manifest, checks, learned, frame
) -> GateResult:
    """Stages a batch that passed (or an empty one, forced) for ``publish``; hands over the
    landing files that belong to no window and the late ones (from ``manifest``, the gate's)."""
    rows_path, meta_path = _staged(storage, window, run)
    staged = storage.write_parquet(frame, rows_path)
    meta = {"mode": "publish", "files": batch.files, "account": batch.account, "holds": [h.as_dict() for h in holds], "warnings": warnings}
    storage.write_json(meta, meta_path)
    unplaced, late = jail.unplaced(landing, manifest), landing.late_files(manifest=manifest)
    if holds:
        log.warning("rows inside open quarantine entries stay out of this window: %s", [h.as_dict() for h in holds])
    return {
        "kind": "gate",
        "rows": len(batch.frame),
        "checks": checks,
        "staged": staged,
        "learned_from": (learned or {}).get("window"),
        "unplaced": unplaced,
        "late": late,
        "warnings": warnings,
        "account": batch.account,
        "accepted": None,
    }


def check_accepted(settings: Settings, entry_id: str, reason: str | None, run: RunInfo) -> GateResult:
    """Stages an open quarantine entry's rows as they were quarantined, for an operator who
    accepts them (``ingest`` run conf ``{"accept": "<entry>", "reason": "..."}``).

    Rows whose event time cannot be read, or lies outside the entry's window, cannot be placed in
    the table: they stay in the entry (counted in the result).

    Raises:
        QuarantineError: no reason given, the entry does not exist or is not open, or none of its
            rows can be curated.
        CuratedError: its rows cannot be stored in the table as they are (a column changed type).
    """
    if not (reason or "").strip():
        raise QuarantineError('accepting a quarantined batch needs a reason: {"accept": "<entry>", "reason": "..."}')
    storage = Storage.from_settings(settings)
    jail = Quarantine(storage)
    entry = jail.entry(entry_id)
    if entry["state"] != "open":
        raise QuarantineError(f"quarantine entry {entry_id} is {entry['state']}, not open: {entry['history'][-1]}")
    window = Window.parse(entry["window"]["start"], entry["window"]["end"])
    frames = []
    for rows in jail.rows(entry_id).values():
        stamps = parse_timestamps(rows[settings.data.timestamp], settings.data.timestamp_format)
        rows = rows.copy()
        rows[settings.data.timestamp] = stamps
        frames.append(rows)
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if frame.empty:
        raise QuarantineError(f"quarantine entry {entry_id} holds no rows")
    placeable = window.contains(frame[settings.data.timestamp])
    left = int((~placeable).sum())
    frame = frame[placeable].reset_index(drop=True)
    if frame.empty:
        raise QuarantineError(f"none of the {left} rows of entry {entry_id} has a readable event time inside its window")
    staged_frame = storage.curated().conform(frame)
    rows_path, meta_path = _staged(storage, window, run)
    staged = storage.write_parquet(staged_frame, rows_path)
    files = {name: {"size": info.get("size"), "mtime": info.get("mtime")} for name, info in entry["files"].items()}
    account = {"files": len(files), "read": len(frame) + left, "window": len(frame), "unreadable": left}
    # other open entries inside this window keep their rows out of it, as at the gate
    holds = [h.as_dict() for h in jail.holds(window)]
    storage.write_json(
        {"mode": "accept", "entry": entry_id, "reason": reason, "files": files, "account": account, "holds": holds, "warnings": []},
        meta_path,
    )
    if left:
        log.warning("%d row(s) of entry %s have no readable event time inside its window and stay quarantined", left, entry_id)
    log.info("entry %s: %d rows staged for acceptance (%s)", entry_id, len(frame), reason)
    return {
        "kind": "gate",
        "rows": len(frame),
        "checks": 0,
        "staged": staged,
        "learned_from": None,
        "unplaced": [],
        "late": [],
        "warnings": [f"accepted quarantine entry {entry_id} without the gate: {reason}"],
        "account": account,
        "accepted": entry_id,
    }


def _published_by(storage: Storage, window: Window, run: RunInfo) -> PublishResult | None:
    """What this run's earlier attempt committed for the window, from the table's history."""
    for commit in storage.curated().history(50):
        if commit.get("driftloop.run_id") == run.get("run_id") and commit.get("driftloop.window_start") == window.start.isoformat():
            rows = int(commit.get("driftloop.rows", 0))
            return {
                "kind": "publish",
                "rows": rows,
                "version": commit["version"],
                "dropped": int(commit.get("driftloop.dropped", 0)),
                "resolved": [],
                "late": [],
                "account": {},
            }
    return None


def publish(settings: Settings, window: Window, run: RunInfo, force: bool = False) -> PublishResult:
    """Replaces the window's curated rows with the staged ones in one Delta commit, records the
    window as published from the files it read, and closes the window's open quarantine entries
    (``resolved``; with an accept, that entry ``accepted`` and the others ``superseded``).

    Raises:
        CuratedError: the replacement would drop more than ``quality.max_curated_drop`` of the
            window's curated rows (and ``force`` is not set).
        FileNotFoundError: nothing is staged for the window (the gate did not pass).
    """
    storage = Storage.from_settings(settings)
    staged, meta_path = _staged(storage, window, run)
    if not storage.exists(staged):
        done = _published_by(storage, window, run)
        if done is not None:  # a retry after this run's publish finished (say, the worker died after it)
            log.info("this run already published %s as table version %s", window.key, done["version"])
            return done
        raise FileNotFoundError(f"nothing staged for {window.as_dict()}: the gate task must pass first")
    meta = storage.read_json(meta_path)
    frame = storage.read_parquet(staged).drop(columns=["_event_date"], errors="ignore")
    landing, jail = LandingZone.from_settings(settings, storage), Quarantine(storage)
    accepted = meta.get("entry") if meta["mode"] == "accept" else None
    if accepted and (state := jail.entry(accepted)["state"]) != "open":
        raise QuarantineError(f"quarantine entry {accepted} was {state} by another run after this run's gate: nothing was changed")
    # the spans held out at the gate, and any entry opened since (by a run of an overlapping
    # window between this gate and this publish): their rows stay as they are in the table
    holds = sorted({Window.parse(h["start"], h["end"]) for h in meta["holds"]} | set(jail.holds(window)), key=lambda w: (w.start, w.end))
    if len(holds) > len(meta["holds"]):
        inside = pd.Series(False, index=frame.index)
        for h in holds:
            inside |= h.contains(frame[settings.data.timestamp])
        log.warning("%d staged row(s) fall in quarantine entries opened since the gate and stay out", int(inside.sum()))
        frame = frame[~inside].reset_index(drop=True)
    commit = Commit(meta["mode"], run.get("dag_id"), run.get("run_id"), run.get("user"), meta.get("reason"), force)
    written = storage.curated().replace(
        frame, window, commit, holds, settings.quality.max_curated_drop, {"quarantine_entry": accepted} if accepted else None
    )
    record = {"run_id": run.get("run_id"), "dag_id": run.get("dag_id"), "version": written["version"], "warnings": meta["warnings"]}
    late = landing.record_published(window, meta["files"], record)
    if accepted:
        jail.set_state(accepted, "accepted", **dict(run), reason=meta.get("reason"), version=written["version"])
    resolved = jail.resolve(window, dict(run), accepted)
    for entry_id in resolved:
        log.info("window %s was published; quarantine entry %s is closed (kept)", window.key, entry_id)
    log.info(balance(meta["account"], window, "curated"))
    storage.fs.rm(staged)
    storage.fs.rm(meta_path)
    return {
        "kind": "publish",
        "rows": written["rows"],
        "version": written["version"],
        "dropped": written["dropped"],
        "resolved": resolved,
        "late": late,
        "account": meta["account"],
    }
