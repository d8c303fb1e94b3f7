"""Starting the loop on a team's own data through a running Airflow, as a user would from the UI
(``driftloop bootstrap``; the demo drives its simulated stream with the same ``Driver``).

``bootstrap`` ingests the landing zone's history before a date window by window, trains the first
champion on the last ``training.window`` of it, then ingests the later windows one at a time: each
published window starts ``monitor`` (its asset), whose verdict is waited for. It ends with the table
of intervals the demo prints. Every run has a fixed id (``bootstrap__ingest__<window>``), so a
second bootstrap over the same dates triggers nothing twice: a run that exists is waited for, not
started again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from include.airflow_api import Airflow
from include.storage import Window

if TYPE_CHECKING:
    from include.config import Settings

DAG_IDS = ("ingest", "monitor", "drift_watch", "retrain", "rollback")


def iso(d: datetime) -> str:
    return d.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Row:
    """One line of the table: an interval, its gate, its verdict."""

    interval: str
    rows: int | None = None
    gate: str = ""
    drift_share: float | None = None
    live: float | None = None
    champion: int | None = None
    note: str = ""
    shadow: str = ""


def format_table(rows: list[Row], metric: str) -> str:
    head = ["interval", "rows", "gate", "drift share", f"live {metric}", "champion", "shadow", "notes"]
    cells = [
        [
            r.interval,
            "" if r.rows is None else str(r.rows),
            r.gate,
            "" if r.drift_share is None else f"{r.drift_share:.2f}",
            "" if r.live is None else f"{r.live:.3f}",
            "" if r.champion is None else f"v{r.champion}",
            r.shadow,
            r.note,
        ]
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]
    line = "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip()
    body = ["  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)).rstrip() for c in cells]
    return "\n".join([line, "-" * len(line), *body])


@dataclass
class Driver:
    """Drives the DAGs of one config through Airflow's REST API and reads the verdicts from its
    storage; ``prefix`` starts every run id it makes."""

    settings: object
    airflow: Airflow
    prefix: str = "bootstrap"
    table: list[Row] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    out: Callable[[str], None] = print

    def say(self, text: str) -> None:
        self.out(f"[{time.monotonic() - self.started:6.1f}s] {text}")

    def wait_for_dags(self, timeout: float = 180, where: str = "the scheduler's log") -> None:
        """Waits until Airflow has parsed driftloop's DAGs; unpauses those that are paused."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            paused = self.airflow.dag_ids()
            if set(DAG_IDS) <= paused.keys():
                for dag_id in sorted(d for d in DAG_IDS if paused[d]):
                    self.airflow.unpause(dag_id)
                return
            time.sleep(2)
        raise TimeoutError(f"the DAGs {list(DAG_IDS)} were not parsed within {timeout:.0f} s; see {where}")

    def ingest(self, start: datetime, end: datetime) -> tuple[str, dict | None]:
        """One ``ingest`` run over ``[start, end)``: its state and its gate's result."""
        run_id = f"{self.prefix}__ingest__{Window(start, end).key}"
        if self.airflow.run("ingest", run_id) is None:
            self.airflow.trigger("ingest", run_id, {"start": iso(start), "end": iso(end)})
        state = self.airflow.wait("ingest", run_id)
        return state, self.airflow.xcom("ingest", run_id, "gate")

    def retrain(self, end: datetime, window: str, reason: str) -> tuple[str, str]:
        """One ``retrain`` run ending at ``end``: its run id and state."""
        run_id = f"{self.prefix}__{reason}__{end:%Y%m%d}"
        if self.airflow.run("retrain", run_id) is None:
            self.airflow.trigger("retrain", run_id, {"end": iso(end), "reason": reason, "window": window})
        return run_id, self.airflow.wait("retrain", run_id, timeout=3600)

    def retrain_summary(self, run_id: str) -> str:
        trained = self.airflow.xcom("retrain", run_id, "train") or {}
        promoted = self.airflow.xcom("retrain", run_id, "promote") or {}
        verb = "promoted to @champion" if promoted.get("promoted") else "kept as @challenger"
        return f"v{trained.get('version')} {verb}: {promoted.get('reason', '?')} ({trained.get('mlflow_url')})"

    def wait_until_idle(self, dag_id: str, timeout: float = 300) -> bool:
        """Waits until ``dag_id`` has no queued or running run at two looks a few seconds apart (the
        scheduler turns a waiting asset event into a run on its next loop); False on timeout."""
        deadline, quiet = time.monotonic() + timeout, 0
        while time.monotonic() < deadline:
            busy = any(r["state"] in ("queued", "running") for r in self.airflow.runs(dag_id))
            quiet = 0 if busy else quiet + 1
            if quiet == 2:
                return True
            time.sleep(3)
        return False

    def wait_for_verdict(self, start: datetime, end: datetime, timeout: float = 600) -> dict:
        from include.storage import Storage

        storage = Storage.from_settings(self.settings)
        path = storage.verdict_path(Window(start, end))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if storage.exists(path):
                return storage.read_json(path)
            failed = [r for r in self.airflow.runs("monitor") if r["state"] == "failed"]
            if failed:
                raise RuntimeError(f"monitor run {failed[0]['dag_run_id']} failed; see the Airflow UI")
            time.sleep(2)
        raise TimeoutError(f"no verdict for {Window(start, end).key} within {timeout:.0f} s")

    def verdict_row(self, verdict: dict) -> Row:
        span = Window.parse(verdict["start"], verdict["end"])
        row = Row(
            f"{span.start:%Y-%m-%d}..{span.end:%Y-%m-%d}",
            verdict["rows"],
            "passed",
            verdict["drift_share"],
            verdict["live_metric"],
            verdict["model_version"],
        )
        row.note = "DRIFT: " + ", ".join(verdict["drifted"]) if verdict["drift"] else ""
        if verdict.get("shadow_version") is not None and verdict.get("shadow_metric") is not None:
            row.shadow = f"v{verdict['shadow_version']} {verdict['shadow_metric']:.3f}"
        return row

    def print_table(self) -> None:
        self.out("\n" + format_table(self.table, self.settings.model.metric))


def landing_span(settings: Settings) -> tuple[datetime, datetime] | None:
    """The first and last readable event time in the landing zone (its files only read, the
    timestamp column alone), or None when it holds none."""
    from include.landing import LandingZone, parse_timestamps

    landing = LandingZone.from_settings(settings)
    first = last = None
    for info in landing._listing():
        try:
            stamps = parse_timestamps(landing.read_file(info["name"], [settings.data.timestamp])[settings.data.timestamp], landing.format)
        except (KeyError, ValueError):
            continue  # a file ingest will name as unplaced
        stamps = stamps.dropna()
        if stamps.empty:
            continue
        lo, hi = stamps.min().to_pydatetime(), stamps.max().to_pydatetime()
        first, last = min(first or lo, lo), max(last or hi, hi)
    return (first, last) if first is not None else None


def windows(start: datetime, end: datetime, every: timedelta) -> list[tuple[datetime, datetime]]:
    """``[start, end)`` cut into spans of ``every`` (the last one shorter)."""
    out, at = [], start
    while at < end:
        out.append((at, min(at + every, end)))
        at += every
    return out


def bootstrap(driver: Driver, until: datetime, every: timedelta, start: datetime | None = None, end: datetime | None = None) -> None:
    """Ingests ``[start, until)`` window by window, trains the first champion at ``until`` on the
    last ``training.window``, then ingests ``[until, end)`` window by window, waiting for each
    interval's verdict; fills ``driver.table``.

    ``start`` and ``end`` default to the landing zone's first day and the day after its last.

    Raises:
        ValueError: no data, or nothing before ``until``.
        RuntimeError: a run failed (the table so far is kept in ``driver.table``).
    """
    settings = driver.settings
    if start is None or end is None:
        span = landing_span(settings)
        if span is None:
            raise ValueError(f"no readable event time in {settings.data.landing}: land the files first")
        days = Window.whole_days(*span)
        start, end = start or days.start, end or days.end
        driver.say(f"landing zone {settings.data.landing}: event times from {span[0].isoformat()} to {span[1].isoformat()}")
    if start >= until:
        raise ValueError(f"no history before {until.isoformat()}: the data start at {start.isoformat()}")
    driver.wait_for_dags()
    gated_rows = 0
    for s, e in windows(start, until, every):
        state, gated = driver.ingest(s, e)
        if state != "success":
            driver.table.append(Row(f"{s:%Y-%m-%d}..{e:%Y-%m-%d}", None, "FAILED", note="see the ingest run in the Airflow UI"))
            raise RuntimeError(f"ingest of [{s.isoformat()}, {e.isoformat()}) failed; see the Airflow UI (quarantine: {settings.storage})")
        gated_rows += (gated or {}).get("rows") or 0
        driver.say(f"ingest {s:%Y-%m-%d}..{e:%Y-%m-%d}: {(gated or {}).get('rows')} rows passed the gate")
    # the history's own monitor runs end before the first champion exists: one still queued when
    # it is registered would judge a window of the champion's training rows (monitor runs one at a time)
    if not driver.wait_until_idle("monitor"):
        driver.say("monitor still has runs of the history queued; training the first champion anyway")
    hours = int(settings.training.window.total_seconds() // 3600)
    window = f"{hours // 24}D" if hours % 24 == 0 else f"{hours}H"
    run_id, state = driver.retrain(until, window, "initial")
    if state != "success":
        raise RuntimeError(f"the initial retrain {run_id} failed; see the Airflow UI")
    summary = driver.retrain_summary(run_id)
    driver.say(f"retrain (initial, window {window}): {summary}")
    version = (driver.airflow.xcom("retrain", run_id, "train") or {}).get("version")
    driver.table.append(
        Row(f"{start:%Y-%m-%d}..{until:%Y-%m-%d}", gated_rows, "passed", None, None, version, f"history; {summary.split(':')[0]}")
    )
    for s, e in windows(until, end, every):
        state, _ = driver.ingest(s, e)
        if state != "success":
            driver.table.append(Row(f"{s:%Y-%m-%d}..{e:%Y-%m-%d}", None, "FAILED", note="see the ingest run and the quarantine"))
            driver.say(f"ingest {s:%Y-%m-%d}..{e:%Y-%m-%d} failed: see the Airflow UI and {settings.storage}/quarantine")
            continue
        verdict = driver.wait_for_verdict(s, e)
        driver.table.append(driver.verdict_row(verdict))
        driver.say(f"{s:%Y-%m-%d}..{e:%Y-%m-%d}: drift share {verdict['drift_share']:.2f}, champion v{verdict['model_version']}")
