"""Quarantine: rejected batches, kept with their reports, numbered and never overwritten.

Each rejected batch is an entry ``quarantine/<NNNN>__<window>/``:

    entry.json        window, run, files read, state and its history (open, resolved, accepted)
    report.json/.md   the gate's report: each failed column, rule and the numbers
    rows/<file>.parquet  the window's rows of each landing file, as read (a file whose rows
                      Parquet cannot hold is kept as CSV text), so mixed types never crash it

An entry stays ``open`` until the same window passes the gate (``resolved``) or an operator
accepts it (``accepted``, with who, when and why). While an entry is open, its window's rows are
held: a wider or overlapping window leaves them out. Landing files that belong to no window (no
timestamp column, no readable timestamp) are copied to ``quarantine/unplaced/`` once per version.
"""

from __future__ import annotations

import io
import logging
import re

import pandas as pd

from include.errors import DataError
from include.storage import Storage, Window, safe_name

log = logging.getLogger(__name__)

_ENTRY = re.compile(r"^(\d{4,})__(\d{8}T\d{6}Z__\d{8}T\d{6}Z)$")


class QuarantineError(DataError):
    """A quarantine entry cannot be used as asked (unknown, not open, or without usable rows)."""


class Quarantine:
    """The quarantine folder of a storage root."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.root = storage.path("quarantine")

    def _folder(self, entry_id: str) -> str:
        return f"{self.root}/{entry_id}"

    def _folders(self) -> list[str]:
        """The names of the entry folders, finished or not."""
        if not self.storage.exists(self.root):
            return []
        names = [p.rstrip("/").rsplit("/", 1)[-1] for p in self.storage.fs.ls(self.root, detail=False)]
        return [n for n in names if _ENTRY.match(n)]

    def entry_ids(self) -> list[str]:
        """The finished entries (``entry.json``, written last, is there), oldest first."""
        return sorted(n for n in self._folders() if self.storage.exists(f"{self._folder(n)}/entry.json"))

    def entry(self, entry_id: str) -> dict:
        """The entry's record.

        Raises:
            QuarantineError: there is no such entry.
        """
        if not _ENTRY.match(entry_id or "") or not self.storage.exists(f"{self._folder(entry_id)}/entry.json"):
            known = ", ".join(self.entry_ids()[-5:]) or "none"
            raise QuarantineError(f"no quarantine entry {entry_id!r} under {self.root} (latest: {known})")
        return self.storage.read_json(f"{self._folder(entry_id)}/entry.json")

    def entries(self, state: str | None = None) -> list[dict]:
        out = [self.entry(i) for i in self.entry_ids()]
        return [e for e in out if state is None or e["state"] == state]

    def holds(self, window: Window) -> list[Window]:
        """Spans of open entries of *other* windows that overlap ``window``: their rows stay out
        of it until the entry is resolved (its own window passes) or accepted."""
        spans = set()
        for entry in self.entries("open"):
            span = Window.parse(entry["window"]["start"], entry["window"]["end"])
            if span != window and span.start < window.end and window.start < span.end:
                spans.add(span)
        return sorted(spans, key=lambda w: (w.start, w.end))

    def add(self, window: Window, raw: dict[str, pd.DataFrame], files: dict[str, dict], report: dict, report_md: str, run: dict) -> dict:
        """Keeps a rejected batch as a new numbered entry; returns its record."""
        # entry.json is written last: an entry without it (a task killed half-way) is not an entry
        # (entry_ids sees only finished ones), and its number is never handed out again. No folder
        # move: on an object store that is a copy of every key, not a rename.
        number = max(self._numbers(), default=0) + 1
        entry_id = f"{number:04d}__{window.key}"
        folder = self._folder(entry_id)
        kept = {}
        for i, (name, rows) in enumerate(sorted(raw.items())):
            base = f"rows/{i:03d}__{safe_name(name.rsplit('/', 1)[-1])}"
            written = self._write_rows(rows, f"{folder}/{base}")
            kept[name] = {**files.get(name, {}), "rows": len(rows), "kept_as": written[len(folder) + 1 :]}  # inside the entry
        self.storage.write_json(report, f"{folder}/report.json")
        self.storage.write_text(report_md, f"{folder}/report.md")
        record = {
            "id": entry_id,
            "window": window.as_dict(),
            "rows": sum(len(r) for r in raw.values()),
            "files": kept,
            "state": "open",
            "created_by": run,
            "history": [{"state": "open", **run}],
            "failed": [f"{o['column'] or '(table)'}: {o['rule']}" for o in report.get("results", []) if not o.get("success")],
        }
        self.storage.write_json(record, f"{folder}/entry.json")
        return record

    def _numbers(self) -> list[int]:
        """The numbers of every entry folder, finished or not."""
        return [int(_ENTRY.match(n).group(1)) for n in self._folders()]

    def _write_rows(self, rows: pd.DataFrame, base: str) -> str:
        import pyarrow as pa

        try:
            buffer = io.BytesIO()
            rows.to_parquet(buffer, index=False)
            return self.storage.write_bytes(buffer.getvalue(), f"{base}.parquet")
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as err:
            # values of several types in one column: Parquet cannot type it; text keeps every value
            log.warning("rows of %s kept as CSV text: %s", base, err)
            return self.storage.write_text(rows.to_csv(index=False), f"{base}.csv")

    def rows(self, entry_id: str) -> dict[str, pd.DataFrame]:
        """The entry's rows per landing file, as they were read."""
        entry = self.entry(entry_id)
        out = {}
        for name, info in entry["files"].items():
            path = f"{self._folder(entry_id)}/{info['kept_as']}"
            if path.endswith(".csv"):
                with self.storage.fs.open(path, "rb") as handle:
                    out[name] = pd.read_csv(handle)
            else:
                out[name] = self.storage.read_parquet(path)
        return out

    def set_state(self, entry_id: str, state: str, **details) -> dict:
        """Moves an entry to ``state`` (``resolved``, ``accepted``, ``superseded``), keeping its history."""
        entry = self.entry(entry_id)
        entry["state"] = state
        entry["history"].append({"state": state, **details})
        entry.update({k: v for k, v in details.items() if k in ("reason", "user", "run_id")})
        self.storage.write_json(entry, f"{self._folder(entry_id)}/entry.json")
        return entry

    def resolve(self, window: Window, run: dict, accepted: str | None = None) -> list[str]:
        """Closes the open entries of exactly ``window`` after it was published: ``resolved`` (the
        window passed the gate), or, when an entry was accepted, the others ``superseded``."""
        done = []
        for entry in self.entries("open"):
            if Window.parse(entry["window"]["start"], entry["window"]["end"]) == window and entry["id"] != accepted:
                self.set_state(entry["id"], "superseded" if accepted else "resolved", **run)
                done.append(entry["id"])
        return done

    # -- landing files that belong to no window --------------------------------------------
    def unplaced(self, landing, manifest: dict | None = None) -> list[dict]:
        """Copies each landing file that belongs to no window (``error`` in the manifest) into
        ``quarantine/unplaced/<file>__<size>__<mtime>/`` with a report, once per version of the
        file. The landing file stays where it is. ``manifest``: as ``landing.manifest()`` returned
        it earlier in the same task (None: list the landing zone now).

        Returns the files quarantined by this call: ``[{"file", "rows", "error", "quarantine"}]``.
        """
        manifest = landing.manifest() if manifest is None else manifest
        done = []
        for name, entry in sorted(manifest["files"].items()):
            if not entry.get("error") or entry.get("quarantined"):
                continue
            base = name.rsplit("/", 1)[-1]
            folder = self.storage.path("quarantine", "unplaced", safe_name(f"{base}__{entry['size']}__{entry.get('mtime') or ''}"))
            self.storage.write_bytes(landing.read_bytes(name), f"{folder}/{base}")
            no_column = entry["error"].startswith("no column")
            rule = (
                "the event-time column must exist"
                if no_column
                else f"event times must read as data.timestamp_format ({landing.format})"
                if entry["error"].startswith("no readable")
                else "the file must be readable"
            )
            report = {"file": name, "column": landing.timestamp, "rule": rule, "rows": entry.get("rows"), "error": entry["error"]}
            self.storage.write_json(report, f"{folder}/report.json")
            self.storage.write_text(
                f"# Landing file not ingested\n\n- file: `{name}`\n- rows: {entry.get('rows') if entry.get('rows') is not None else 'unknown'}\n"
                f"- column: `{landing.timestamp}`\n- rule: {rule}, or no window can contain the file's rows\n"
                f"- error: {entry['error']}\n\nThe file was copied here; the landing zone is unchanged. Deliver it again "
                f"with a readable `{landing.timestamp}` column (or set `data.timestamp_format`) and the next ingest of its "
                "windows picks it up.\n",
                f"{folder}/report.md",
            )
            entry["quarantined"] = folder
            done.append({"file": name, "rows": entry.get("rows"), "error": entry["error"], "quarantine": folder})
            log.error("landing file %s belongs to no window (%s); a copy and a report are in %s", name, entry["error"], folder)
        if done:
            landing.save(manifest)
        return done
