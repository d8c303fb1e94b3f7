from pathlib import Path

import pandas as pd
import pytest

from include.simulator import write_daily_batches
from include.storage import Storage, Window, normalize_timestamps

WEEK1 = Window.parse("2026-01-05", "2026-01-12")


@pytest.fixture
def store(tmp_path, stream):
    # a hidden folder above the landing zone must not hide its files (only hidden files inside)
    root = tmp_path / ".project"
    write_daily_batches(stream[stream.timestamp < "2026-01-19"], str(root / "landing"))
    stream.head(5).to_parquet(root / "landing" / ".partial.parquet")
    return Storage(str(root / "store"), str(root / "landing"), "timestamp")


def test_read_landing_is_half_open(store, stream):
    rows = store.read_landing(Window.parse("2026-01-05T12:00", "2026-01-07T12:00"))
    expected = stream[(stream.timestamp >= "2026-01-05T12:00Z") & (stream.timestamp < "2026-01-07T12:00Z")]
    assert sorted(rows.id) == sorted(expected.id)
    assert str(rows.timestamp.dt.tz) == "UTC"


def test_manifest_opens_each_file_once(store, monkeypatch):
    store.read_landing(WEEK1)
    opened = []
    original = store._read_landing_file
    monkeypatch.setattr(store, "_read_landing_file", lambda name, columns=None: opened.append(name) or original(name, columns))
    store.read_landing(Window.parse("2026-01-12", "2026-01-14"))
    # only the two overlapping day files are read; none is re-indexed
    assert len(opened) == 2 and all("2026-01-1" in n for n in opened)


def test_manifest_picks_up_new_and_changed_files(store, stream):
    extra = stream[(stream.timestamp >= "2026-01-19") & (stream.timestamp < "2026-01-20")]
    extra.to_csv(f"{store.landing}/late.csv", index=False)
    rows = store.read_landing(Window.parse("2026-01-19", "2026-01-20"))
    assert len(rows) == len(extra)
    assert any(name.endswith("late.csv") for name in store.landing_manifest())


def test_landing_files_are_never_changed(store):
    landing = Path(store.landing)
    before = {p: p.stat().st_mtime_ns for p in landing.iterdir()}
    frame = store.read_landing(WEEK1)
    store.write_curated(frame, WEEK1, "id")
    store.quarantine(frame, WEEK1, {"x": 1}, "# r")
    assert {p: p.stat().st_mtime_ns for p in landing.iterdir()} == before


def test_curated_rerun_replaces_never_duplicates(store):
    frame = store.read_landing(WEEK1)
    first = store.write_curated(frame, WEEK1, "id")
    store.write_curated(frame, WEEK1, "id")
    again = store.read_curated(WEEK1)
    assert len(first) == 7 and len(again) == len(frame) and again.id.is_unique


def test_curated_rerun_with_fewer_rows_drops_the_old_ones(store):
    frame = store.read_landing(WEEK1)
    store.write_curated(frame, WEEK1, "id")
    store.write_curated(frame.iloc[:10], WEEK1, "id")
    assert len(store.read_curated(WEEK1)) == 10


def test_neighbouring_windows_share_a_day_partition(store):
    a, b = Window.parse("2026-01-05", "2026-01-05T12:00"), Window.parse("2026-01-05T12:00", "2026-01-06")
    store.write_curated(store.read_landing(a), a, "id")
    store.write_curated(store.read_landing(b), b, "id")
    store.write_curated(store.read_landing(a), a, "id")
    day = store.read_curated(Window.parse("2026-01-05", "2026-01-06"))
    assert len(day) == len(store.read_landing(Window.parse("2026-01-05", "2026-01-06"))) and day.id.is_unique


def test_fsspec_memory_filesystem(stream):
    write_daily_batches(stream[stream.timestamp < "2026-01-08"], "memory://landing-test")
    store = Storage("memory://store-test", "memory://landing-test", "timestamp")
    w = Window.parse("2026-01-05", "2026-01-08")
    store.write_curated(store.read_landing(w), w, "id")
    assert len(store.read_curated(w)) == (stream.timestamp < "2026-01-08").sum()


def test_missing_landing_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="landing zone"):
        Storage(str(tmp_path / "s"), str(tmp_path / "none"), "timestamp").read_landing(WEEK1)


def test_normalize_timestamps_names_bad_values():
    frame = pd.DataFrame({"ts": ["2026-01-05T10:00:00", "yesterday"]})
    with pytest.raises(ValueError, match=r"column 'ts': 1 value\(s\) are not timestamps, e.g. 'yesterday'"):
        normalize_timestamps(frame, "ts")
    ok = normalize_timestamps(pd.DataFrame({"ts": ["2026-01-05T10:00:00", "2026-01-05T12:00:00+02:00"]}), "ts")
    assert ok.ts.dt.hour.tolist() == [10, 10]


def test_unreadable_timestamps_reach_the_gate_instead_of_blocking_every_window(tmp_path, stream):
    landing = tmp_path / "landing"
    landing.mkdir()
    day = stream[(stream.timestamp >= "2026-01-05") & (stream.timestamp < "2026-01-06")].copy()
    bad = day.astype({"timestamp": str}).reset_index(drop=True)
    bad.loc[3, "timestamp"] = "not-a-date"
    bad.to_csv(landing / "day1.csv", index=False)
    stream[(stream.timestamp >= "2026-01-06") & (stream.timestamp < "2026-01-07")].to_parquet(landing / "day2.parquet")
    pd.DataFrame({"id": [1], "x": [2]}).to_csv(landing / "no_timestamp.csv", index=False)
    store = Storage(str(tmp_path / "store"), str(landing), "timestamp")
    other = store.read_landing(Window.parse("2026-01-06", "2026-01-07"))  # not blocked by the bad files
    assert len(other) > 0 and other.timestamp.notna().all()
    rows = store.read_landing(Window.parse("2026-01-05", "2026-01-06"))
    assert len(rows) == len(day) and rows.timestamp.isna().sum() == 1
    manifest = store.landing_manifest()
    assert manifest[f"{landing}/day1.csv"]["bad_timestamps"] == 1
    assert "no column 'timestamp'" in manifest[f"{landing}/no_timestamp.csv"]["error"]


def test_a_file_without_the_timestamp_column_is_quarantined_once_as_a_copy(tmp_path, stream):
    landing = tmp_path / "landing"
    landing.mkdir()
    stream[(stream.timestamp >= "2026-01-05") & (stream.timestamp < "2026-01-06")].to_parquet(landing / "day1.parquet")
    pd.DataFrame({"id": [1, 2], "event_time": ["2026-01-05", "2026-01-05"]}).to_csv(landing / "renamed.csv", index=False)
    raw = (landing / "renamed.csv").read_bytes()
    store = Storage(str(tmp_path / "store"), str(landing), "timestamp")
    assert store.quarantine_unplaced() == []  # nothing indexed yet
    store.read_landing(Window.parse("2026-01-05", "2026-01-06"))

    first = store.quarantine_unplaced()
    assert [u["file"] for u in first] == [f"{landing}/renamed.csv"] and "no column 'timestamp'" in first[0]["error"]
    folder = Path(first[0]["quarantine"])
    assert (folder / "renamed.csv").read_bytes() == raw == (landing / "renamed.csv").read_bytes()
    report = (folder / "report.md").read_text()
    assert "`timestamp`" in report and "renamed.csv" in report and "event-time column must exist" in report
    assert store.quarantine_unplaced() == []  # once per file version
    assert store.landing_manifest()[f"{landing}/renamed.csv"]["quarantined"] == str(folder)

    # delivered again with the column: indexed, placed, nothing more quarantined
    pd.DataFrame({"id": [1, 2], "timestamp": ["2026-01-05T01:00:00", "2026-01-05T02:00:00"]}).to_csv(landing / "renamed.csv", index=False)
    assert store.read_landing(Window.parse("2026-01-05", "2026-01-06")).id.isin([1, 2]).sum() >= 2
    assert store.quarantine_unplaced() == []
