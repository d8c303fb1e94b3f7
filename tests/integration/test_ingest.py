"""ingest under dag.test(): the gate, curated storage, idempotent re-runs and quarantine.

One project for the module. Weeks 0 and 1 land clean; week 2 first lands with duplicated ids (a
config-level failure: there is no champion yet), week 3 lands corrupted (negative car values)
after a champion exists, so the learned range check of the champion's profile catches it.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pytest

from tests.integration.conftest import START, alerts_for, rows_in, stable_weeks, task_states, week, xcom_value

pytestmark = pytest.mark.integration


def _rows(frame: pd.DataFrame, span) -> pd.DataFrame:
    return rows_in(frame, *span)


def _curated(project, span) -> pd.DataFrame:
    from include.storage import Window

    return project.storage.read_curated(Window.parse(*span))


def _digest(folder) -> dict[str, str]:
    import hashlib

    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*"))}


def _window_key(span) -> str:
    from include.storage import Window

    return Window.parse(*span).key


@pytest.fixture(scope="module")
def stream_4w():
    return stable_weeks(4)


@pytest.fixture(scope="module")
def project(project_factory, stream_4w):
    from include.simulator import corrupt

    project = project_factory()
    project.land(_rows(stream_4w, (week(0)[0], week(2)[0])))
    # week 2: an upstream export that repeats some rows (same ids twice)
    w2 = _rows(stream_4w, week(2))
    project.land(pd.concat([w2, w2.head(7)]).sort_values("timestamp"))
    # week 3: an export with negative car values and missing debt-to-income ratios
    project.land(corrupt(_rows(stream_4w, week(3)), seed=3))
    project.landed = _digest(project.landing)
    return project


@pytest.fixture(scope="module")
def first_week(project):
    return project.ingest(*week(0))


def test_good_window_is_curated_exactly(project, stream_4w, first_week):
    assert first_week.state == "success"
    states = task_states(first_week)
    assert states == {"window": "success", "gate": "success", "publish": "success", "late_windows": "success", "reingest_late": "skipped"}

    expected = _rows(stream_4w, week(0))
    curated = _curated(project, week(0))
    assert len(curated) == len(expected) > 0
    assert sorted(curated["id"]) == sorted(expected["id"])
    # half-open window: nothing of the next day (or of week 1) was curated
    assert _curated(project, week(1)).empty
    assert not project.storage.exists(project.storage.path("quarantine", _window_key(week(0))))
    assert not list((project.folder / "store").glob("staging/*"))  # the staged batch was moved, not copied


def test_rerun_of_the_same_window_does_not_duplicate(project, stream_4w, first_week):
    again = project.ingest(*week(0))
    assert again.state == "success"
    curated = _curated(project, week(0))
    assert len(curated) == len(_rows(stream_4w, week(0)))
    assert curated["id"].is_unique
    # the pipeline only reads landing files: same names, same bytes
    assert _digest(project.landing) == project.landed


def _entries(project, span) -> list[dict]:
    """The quarantine entries of a window, oldest first."""
    from include.quarantine import Quarantine

    return [e for e in Quarantine(project.storage).entries() if e["id"].endswith(_window_key(span))]


def _rejected(project, span):
    """Ingests a window the gate must reject; returns its new quarantine folder and report."""
    before = len(_entries(project, span))
    dr = project.ingest(*span)
    assert dr.state == "failed"
    states = task_states(dr)
    assert states["gate"] == "failed"
    assert states["publish"] == "upstream_failed"
    entries = _entries(project, span)
    assert len(entries) == before + 1 and entries[-1]["state"] == "open"  # a new entry, none overwritten
    folder = project.folder / "store" / "quarantine" / entries[-1]["id"]
    return folder, (folder / "report.md").read_text()


def test_duplicate_ids_fail_the_gate_before_any_champion(project, first_week):
    folder, report = _rejected(project, week(2))
    assert "expect_column_values_to_be_unique" in report
    assert "| id |" in report
    assert "none (no champion yet)" in report
    assert list((folder / "rows").glob("*.parquet")) and (folder / "report.json").exists()
    assert _curated(project, week(2)).empty


@pytest.fixture(scope="module")
def champion(project, first_week):
    """Week 1 ingested and a first model trained on weeks 0-1, so the gate has learned tolerances."""
    assert project.ingest(*week(1)).state == "success"
    dr = project.retrain(week(2)[0], reason="initial", window="14D")
    assert dr.state == "success", task_states(dr)
    return dr


def test_corrupt_batch_fails_on_the_champions_learned_range(project, champion):
    folder, report = _rejected(project, week(3))
    failed = [line for line in report.splitlines() if "FAILED" in line and line.startswith("|")]
    assert any("| car_value |" in line and "expect_column_values_to_be_between" in line for line in failed), report
    assert "learned tolerances from the champion's training window: none" not in report
    quarantined = pd.concat([pd.read_parquet(p) for p in (folder / "rows").glob("*.parquet")])
    assert (quarantined["car_value"] < 0).any()
    assert _curated(project, week(3)).empty
    assert _digest(project.landing) == project.landed  # a bad batch is kept, never moved or deleted


def test_a_quarantined_batch_sends_one_failure_alert_naming_the_column(project, champion, alert_hook):
    dr = project.ingest(*week(3))
    assert dr.state == "failed"
    sent = alerts_for(alert_hook, dr)
    assert [(a["kind"], a["dag_id"], a["task_id"]) for a in sent] == [("failure", "ingest", "gate")]
    assert "car_value" in sent[0]["text"] and "expect_column_values_to_be_between" in sent[0]["text"]
    assert sent[0]["title"] == f"{project.name}: ingest.gate failed"
    assert f"/dags/ingest/runs/{quote(dr.run_id)}/tasks/gate" in sent[0]["link"]
    kept = project.storage.read_json(
        project.storage.path("alerts", f"ingest__{re.sub(r'[^A-Za-z0-9_.-]', '_', dr.run_id)}__gate__failure__try1.json")
    )
    assert kept["delivered"] is True and kept["driftloop"] == sent[0]


def test_fixed_landing_data_passes_and_resolves_the_quarantine(project, stream_4w, champion):
    """The upstream re-delivers week 2 without the duplicates: the re-run passes the (now learned)
    gate, curates each row once and closes the window's quarantine entry (kept where it was)."""
    project.land(_rows(stream_4w, week(2)))
    dr = project.ingest(*week(2))
    assert dr.state == "success", task_states(dr)
    curated = _curated(project, week(2))
    assert len(curated) == len(_rows(stream_4w, week(2)))
    assert curated["id"].is_unique
    entries = _entries(project, week(2))
    assert [e["state"] for e in entries] == ["resolved"] and entries[0]["history"][-1]["run_id"] == dr.run_id
    # the old report is kept, not deleted
    assert (project.folder / "store" / "quarantine" / entries[0]["id"] / "report.md").exists()


def test_rerun_replaces_a_window_that_does_not_start_at_midnight(project_factory, stream_4w):
    """A re-run replaces what the window held: rows withdrawn upstream leave curated storage too,
    once confirmed with {"force": true} (half the window's rows going is refused by default)."""
    from datetime import timedelta

    project = project_factory("midday")
    span = (START + timedelta(hours=12), START + timedelta(days=1, hours=12))
    project.land(rows_in(stream_4w, START, START + timedelta(days=2)))
    assert project.ingest(*span).state == "success"
    assert len(_curated(project, span)) == len(rows_in(stream_4w, *span))

    # the upstream re-delivers day 2 without its morning rows (those inside the window)
    day2 = rows_in(stream_4w, START + timedelta(days=1), START + timedelta(days=2))
    project.land(day2[day2["timestamp"] >= pd.Timestamp(span[1], tz="UTC")])
    assert project.ingest(*span).state == "failed"
    assert len(_curated(project, span)) == len(rows_in(stream_4w, *span))  # refused: nothing changed
    assert project.run("ingest", {"start": span[0].isoformat(), "end": span[1].isoformat(), "force": True}).state == "success"
    expected = rows_in(stream_4w, span[0], START + timedelta(days=1))
    assert sorted(_curated(project, span)["id"]) == sorted(expected["id"])


def test_a_landing_file_without_timestamps_is_quarantined_and_alerted_once(project_factory, stream_4w, alert_hook):
    """The window's rows are ingested as usual; the file that belongs to no window is copied to
    quarantine with a report, and one alert names it. The next run says nothing more."""
    project = project_factory("unplaced")
    project.land(rows_in(stream_4w, *week(0)))
    renamed = rows_in(stream_4w, *week(1)).rename(columns={"timestamp": "event_time"})
    renamed.to_csv(project.landing / "export_renamed.csv", index=False)

    first = project.ingest(*week(0))
    assert first.state == "success", task_states(first)
    assert len(_curated(project, week(0))) == len(rows_in(stream_4w, *week(0)))
    unplaced = xcom_value(first, "gate")["unplaced"]
    assert [u["file"].rsplit("/", 1)[-1] for u in unplaced] == ["export_renamed.csv"]
    assert (Path(unplaced[0]["quarantine"]) / "report.md").exists()
    sent = alerts_for(alert_hook, first)
    assert [(a["kind"], a["task_id"]) for a in sent] == [("unplaced", "gate")]
    assert "export_renamed.csv" in sent[0]["text"] and "no column 'timestamp'" in sent[0]["text"]

    again = project.ingest(*week(0))
    assert again.state == "success" and xcom_value(again, "gate")["unplaced"] == []
    assert alerts_for(alert_hook, again) == []


def test_a_failed_gate_still_alerts_the_file_that_belongs_to_no_window(project_factory, stream_4w, alert_hook):
    """The run that first sees the unplaced file also rejects its batch (duplicate ids): two
    alerts, the gate's failure and the unplaced file, each of its own kind."""
    project = project_factory("unplaced_failed")
    rows = rows_in(stream_4w, *week(0))
    project.land(pd.concat([rows, rows.head(5)]))
    rows_in(stream_4w, *week(1)).rename(columns={"timestamp": "event_time"}).to_csv(project.landing / "export_renamed.csv", index=False)

    dr = project.ingest(*week(0))
    assert dr.state == "failed" and task_states(dr)["gate"] == "failed"
    sent = {a["kind"]: a for a in alerts_for(alert_hook, dr)}
    assert sorted(sent) == ["failure", "unplaced"]
    assert "expect_column_values_to_be_unique" in sent["failure"]["text"]
    assert "export_renamed.csv" in sent["unplaced"]["text"] and "no column 'timestamp'" in sent["unplaced"]["text"]
    assert (project.folder / "store" / "quarantine" / "unplaced").is_dir()
