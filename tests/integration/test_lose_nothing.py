"""Every landing row accounted for, under dag.test() with the real gate and the real Delta table:
late files, files of epoch timestamps, an operator's accept, a re-ingest after retention, a wider
window over a quarantined day, and event times from the future. Each ends by checking what
happened to the rows and that the landing files are byte for byte as delivered."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pandas as pd
import pytest

from tests.integration.conftest import START, alerts_for, rows_in, stable_weeks, task_states, xcom_value

pytestmark = pytest.mark.integration

DAY = timedelta(days=1)
START_UTC = pd.Timestamp(START, tz="UTC").to_pydatetime()


def _digest(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*")) if p.is_file()}


def _curated(project, start, end) -> pd.DataFrame:
    from include.storage import Window

    return project.storage.read_curated(Window.parse(start, end))


def _entries(project):
    from include.quarantine import Quarantine

    return Quarantine(project.storage).entries()


@pytest.fixture(scope="module")
def stream():
    return stable_weeks(2)


def test_a_late_file_is_alerted_then_reingested_once(project_factory, stream, alert_hook):
    project = project_factory("late")
    span = (START, START + 2 * DAY)
    project.land(rows_in(stream, START, START + 3 * DAY))
    assert project.ingest(*span).state == "success"
    before = len(_curated(project, *span))

    # the upstream sends more rows of day 1 after the window was published
    late = rows_in(stream, START, START + DAY).head(20).assign(id=lambda f: f.id + 50_000)
    late.to_csv(project.landing / "resent.csv", index=False)
    delivered = _digest(project.landing)

    other = project.ingest(START + 2 * DAY, START + 3 * DAY)  # any later run notices it
    assert other.state == "success", task_states(other)
    found = xcom_value(other, "gate")["late"]
    assert [(f["file"].rsplit("/", 1)[-1], f["rows"]) for f in found] == [("resent.csv", 20)]
    assert found[0]["windows"][0]["start"] == pd.Timestamp(START, tz="UTC").isoformat()
    sent = alerts_for(alert_hook, other)
    assert [a["kind"] for a in sent] == ["late"] and "resent.csv" in sent[0]["text"]

    again = project.ingest(*span)  # the documented trigger: re-ingest the window
    assert again.state == "success"
    curated = _curated(project, *span)
    assert len(curated) == before + 20 and curated["id"].is_unique
    assert project.storage.curated().history(1)[0]["driftloop.run_id"] == again.run_id
    assert _digest(project.landing) == delivered


def test_a_file_of_epoch_times_is_unplaced_and_alerted_with_its_rows(project_factory, stream, alert_hook):
    project = project_factory("epoch")
    project.land(rows_in(stream, START, START + DAY))
    epoch = rows_in(stream, START + DAY, START + 2 * DAY).copy()
    epoch["timestamp"] = epoch["timestamp"].astype("int64") // 10**6  # seconds since 1970
    epoch.to_csv(project.landing / "epoch.csv", index=False)

    dr = project.ingest(START, START + DAY)
    assert dr.state == "success"
    sent = alerts_for(alert_hook, dr)
    assert [a["kind"] for a in sent] == ["unplaced"]
    assert "epoch.csv" in sent[0]["text"] and f"{len(epoch)} rows" in sent[0]["text"] and "timestamp_format" in sent[0]["text"]
    # nothing of it reached the table, nothing was read as 1970
    assert _curated(project, "1970-01-01", "1971-01-01").empty


def test_an_operator_accepts_a_quarantined_batch_with_a_reason(project_factory, stream):
    project = project_factory("accept")
    day = rows_in(stream, START, START + DAY)
    project.land(pd.concat([day, day.head(3)]))  # repeated ids: rejected
    assert project.ingest(START, START + DAY).state == "failed"
    [entry] = _entries(project)
    assert entry["state"] == "open" and entry["rows"] == len(day) + 3

    missing = project.run("ingest", {"accept": entry["id"]})  # no reason: refused, not retried
    assert missing.state == "failed" and task_states(missing)["gate"] == "failed"

    dr = project.run("ingest", {"accept": entry["id"], "reason": "duplicates are re-sent rows, known upstream bug"})
    assert dr.state == "success", task_states(dr)
    assert len(_curated(project, START, START + DAY)) == len(day) + 3  # as it was quarantined
    [accepted] = _entries(project)
    assert accepted["state"] == "accepted" and accepted["reason"].startswith("duplicates")
    assert accepted["history"][-1]["run_id"] == dr.run_id
    commit = project.storage.curated().history(1)[0]
    assert commit["driftloop.operation"] == "accept" and commit["driftloop.quarantine_entry"] == entry["id"]
    assert commit["driftloop.reason"].startswith("duplicates")
    # accepted once: a second accept is refused
    assert project.run("ingest", {"accept": entry["id"], "reason": "again"}).state == "failed"


def test_a_reingest_after_retention_is_refused_unless_forced(project_factory, stream):
    project = project_factory("retention")
    span = (START, START + 3 * DAY)
    project.land(rows_in(stream, *span))
    assert project.ingest(*span).state == "success"
    kept = _curated(project, *span)
    for path in sorted(project.landing.glob("*.parquet"))[:2]:  # retention removed two days
        path.unlink()

    dr = project.ingest(*span)
    assert dr.state == "failed" and task_states(dr)["publish"] == "failed"
    assert sorted(_curated(project, *span)["id"]) == sorted(kept["id"])  # untouched

    forced = project.run("ingest", {"start": span[0].isoformat(), "end": span[1].isoformat(), "force": True})
    assert forced.state == "success"
    assert len(_curated(project, *span)) == len(rows_in(stream, START + 2 * DAY, span[1]))
    assert project.storage.curated().history(1)[0]["driftloop.force"] == "true"


def test_a_wider_window_never_carries_a_quarantined_days_rows(project_factory, stream):
    project = project_factory("wider")
    week = rows_in(stream, START, START + 7 * DAY)
    bad_day = rows_in(stream, START + 2 * DAY, START + 3 * DAY)
    project.land(week)
    project.land(pd.concat([bad_day, bad_day.head(2)]))  # day 3 re-delivered with repeated ids
    assert project.ingest(START + 2 * DAY, START + 3 * DAY).state == "failed"

    dr = project.ingest(START, START + 7 * DAY)
    assert dr.state == "success", task_states(dr)
    curated = _curated(project, START, START + 7 * DAY)
    assert not curated["id"].isin(bad_day["id"]).any()
    assert len(curated) == len(week) - len(bad_day)
    assert [e["state"] for e in _entries(project)] == ["open"]
    account = xcom_value(dr, "gate")["account"]
    assert account["held"] == len(bad_day) + 2


def test_event_times_from_the_future_break_the_clock_skew_rule(project_factory, stream):
    """dag.test() runs now; a window reaching two days ahead holds rows of tomorrow."""
    project = project_factory("future")
    now = pd.Timestamp.now(tz="UTC").floor("D")
    rows = rows_in(stream, START, START + DAY).head(30).copy()
    rows["timestamp"] = now + pd.Timedelta(hours=36) + pd.to_timedelta(range(len(rows)), unit="s")
    project.land(rows)
    dr = project.ingest(now.to_pydatetime(), (now + pd.Timedelta(days=2)).to_pydatetime())
    assert dr.state == "failed"
    [entry] = _entries(project)
    report = (project.folder / "store" / "quarantine" / entry["id"] / "report.md").read_text()
    assert "max_clock_skew" in report and "| timestamp |" in report


def test_with_late_reingest_ingest_triggers_the_late_windows_itself(project_factory, stream):
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    project = project_factory("reingest", schedule__late="reingest")
    span = (START, START + DAY)
    project.land(rows_in(stream, START, START + 2 * DAY))
    assert project.ingest(*span).state == "success"
    rows_in(stream, START, START + DAY).head(5).assign(id=lambda f: f.id + 70_000).to_csv(project.landing / "resent.csv", index=False)

    dr = project.ingest(START + DAY, START + 2 * DAY)
    assert dr.state == "success" and task_states(dr)["reingest_late"] == "success"
    from include.landing import LandingZone

    [(key, window)] = LandingZone.from_settings(project.settings).late_runs()  # still late: nothing ran it yet
    assert window.as_dict() == {"start": START_UTC.isoformat(), "end": (START_UTC + DAY).isoformat()}
    with create_session() as session:
        triggered = session.query(DagRun).filter(DagRun.dag_id == "ingest", DagRun.run_id == f"late__{key}").all()
        assert [(r.conf["start"], r.conf["end"]) for r in triggered] == [(START_UTC.isoformat(), (START_UTC + DAY).isoformat())]
    again = project.ingest(START + DAY, START + 2 * DAY)  # the same late state triggers nothing twice
    assert again.state == "success"
    with create_session() as session:
        assert session.query(DagRun).filter(DagRun.dag_id == "ingest", DagRun.run_id.like(f"late__{key[:35]}%")).count() == 1


def test_a_window_emptied_by_retention_is_refused_then_forced(project_factory, stream):
    project = project_factory("emptied")
    span = (START, START + DAY)
    project.land(rows_in(stream, *span))
    assert project.ingest(*span).state == "success"
    kept = len(_curated(project, *span))
    for path in project.landing.glob("*.parquet"):
        path.unlink()
    dr = project.ingest(*span)
    assert dr.state == "failed" and task_states(dr)["gate"] == "failed"
    assert len(_curated(project, *span)) == kept and _entries(project) == []  # untouched, nothing quarantined
    forced = project.run("ingest", {"start": span[0].isoformat(), "end": span[1].isoformat(), "force": True})
    assert forced.state == "success", task_states(forced)
    assert _curated(project, *span).empty
    assert project.storage.curated().history(1)[0]["driftloop.force"] == "true"


def test_a_row_from_the_future_in_a_current_file_fails_the_clock_skew_rule(project_factory, stream):
    """A scheduled run's window ends at its run time; a row dated 2099 in one of its files must not
    pass as merely pending."""
    project = project_factory("year2099")
    rows = rows_in(stream, START, START + DAY)
    odd = rows.head(1).assign(id=4_242_424, timestamp=pd.Timestamp("2099-01-01T00:00Z"))
    project.land(rows)
    pd.concat([rows.head(20), odd]).to_parquet(project.landing / "export_with_2099.parquet")
    dr = project.ingest(START, START + DAY)
    assert dr.state == "failed"
    [entry] = _entries(project)
    report = (project.folder / "store" / "quarantine" / entry["id"] / "report.md").read_text()
    assert "max_clock_skew" in report and entry["rows"] == len(rows) + 21


def _run(run_id: str) -> dict:
    return {"dag_id": "ingest", "run_id": run_id, "user": "admin"}


def test_two_runs_of_one_window_interleaved_each_publish_their_own_batch(project_factory, stream):
    """gate A, gate B, publish A, publish B: the order two runs of one window can take when the
    pool lets their tasks alternate (a backfill beside a manual run). Driven through the functions
    the tasks call, in that order: dag.test() runs one DAG run at a time."""
    from include.ingestion import check_landing, publish
    from include.storage import Window

    project = project_factory("interleave")
    span = Window.parse(START, START + 2 * DAY)
    first = rows_in(stream, START, START + 2 * DAY)
    project.land(first)
    check_landing(project.settings, span, _run("manual__a"))
    more = first.head(5).assign(id=lambda f: f.id + 70_000)  # lands between the two gates
    more.to_csv(project.landing / "more.csv", index=False)
    check_landing(project.settings, span, _run("manual__b"))

    assert publish(project.settings, span, _run("manual__a"))["rows"] == len(first)  # what A's gate read
    assert publish(project.settings, span, _run("manual__b"))["rows"] == len(first) + 5
    curated = _curated(project, START, START + 2 * DAY)
    assert len(curated) == len(first) + 5 and curated["id"].is_unique
    commits = [c for c in project.storage.curated().history() if c.get("driftloop.operation") == "publish"]
    assert [c["driftloop.run_id"] for c in commits] == ["manual__b", "manual__a"]  # newest first
    assert project.storage.fs.ls(project.storage.path("staging")) == []  # nothing left behind
    # a retry of A's publish finds its own commit, not B's batch
    assert publish(project.settings, span, _run("manual__a"))["version"] == commits[1]["version"]


def test_an_entry_accepted_by_another_run_after_the_gate_is_not_published_twice(project_factory, stream):
    from include.ingestion import check_accepted, publish
    from include.quarantine import QuarantineError
    from include.storage import Window

    project = project_factory("accept_race")
    day = rows_in(stream, START, START + DAY)
    project.land(pd.concat([day, day.head(3)]))
    assert project.ingest(START, START + DAY).state == "failed"
    [entry] = _entries(project)
    span = Window.parse(START, START + DAY)
    check_accepted(project.settings, entry["id"], "known re-sends", _run("manual__a"))
    check_accepted(project.settings, entry["id"], "known re-sends", _run("manual__b"))
    publish(project.settings, span, _run("manual__a"))
    version = project.storage.curated().version()
    with pytest.raises(QuarantineError, match="accepted by another run"):
        publish(project.settings, span, _run("manual__b"))
    assert project.storage.curated().version() == version
    [accepted] = _entries(project)
    assert accepted["state"] == "accepted" and accepted["history"][-1]["run_id"] == "manual__a"
