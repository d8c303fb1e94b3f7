"""The landing zone and its manifest, the curated Delta table, the quarantine (include/landing.py,
include/curated.py, include/quarantine.py): on real files, a real Delta table."""

from pathlib import Path

import pandas as pd
import pytest

from include.curated import Commit, CuratedError
from include.landing import LandingZone, parse_timestamps
from include.quarantine import Quarantine
from include.simulator import write_daily_batches
from include.storage import Storage, Window

WEEK1 = Window.parse("2026-01-05", "2026-01-12")
JAN5 = Window.parse("2026-01-05", "2026-01-06")
JAN6 = Window.parse("2026-01-06", "2026-01-07")
PUBLISH = Commit("publish", "ingest", "manual__test")


def zone(root: Path, landing: str | None = None, fmt: str = "iso") -> tuple[Storage, LandingZone]:
    """A storage root under ``root`` and its landing zone (default ``root/landing``)."""
    landing = landing or str(root / "landing")
    storage = Storage(str(root / "store"), landing, "timestamp")
    return storage, LandingZone(storage, landing, "timestamp", fmt)


def between(frame: pd.DataFrame, start: str, end: str) -> pd.DataFrame:
    """The rows of ``frame`` with ``start <= timestamp < end``."""
    return frame[(frame.timestamp >= start) & (frame.timestamp < end)]


def two_rows(**columns) -> pd.DataFrame:
    """Rows 1 and 2 of JAN5 (ids, event times) with ``columns``."""
    return pd.DataFrame({"id": [1, 2], "timestamp": pd.to_datetime(["2026-01-05T01:00Z", "2026-01-05T02:00Z"]), **columns})


@pytest.fixture
def store(tmp_path, stream):
    # a hidden folder above the landing zone must not hide its files (only hidden files inside)
    root = tmp_path / ".project"
    write_daily_batches(stream[stream.timestamp < "2026-01-19"], str(root / "landing"))
    stream.head(5).to_parquet(root / "landing" / ".partial.parquet")
    return zone(root)


@pytest.fixture
def week1(store):
    """WEEK1's landing rows, published once: ``(storage, table, frame)``."""
    storage, landing = store
    table = storage.curated()
    frame = landing.read(WEEK1).frame
    table.replace(frame, WEEK1, PUBLISH)
    return storage, table, frame


@pytest.fixture
def landing_dir(tmp_path) -> Path:
    """An empty landing folder, ``tmp_path/landing`` (the one ``zone(tmp_path)`` reads)."""
    folder = tmp_path / "landing"
    folder.mkdir()
    return folder


@pytest.fixture
def bare_table(tmp_path):
    """A curated table of its own, whose ``feature`` is a numeric feature (a double)."""
    from include.curated import CuratedTable

    return CuratedTable(str(tmp_path / "t"), "timestamp", "id", floats=["feature"])


def test_window_days_and_key():
    assert WEEK1.days() == [f"2026-01-{d:02d}" for d in range(5, 12)]  # the end is excluded
    assert Window.parse("2026-01-05T23:00", "2026-01-06T00:00:01").days() == ["2026-01-05", "2026-01-06"]
    assert Window.from_key(WEEK1.key) == WEEK1


def test_read_landing_is_half_open(store, stream):
    _, landing = store
    rows = landing.read(Window.parse("2026-01-05T12:00", "2026-01-07T12:00")).frame
    expected = between(stream, "2026-01-05T12:00Z", "2026-01-07T12:00Z")
    assert sorted(rows.id) == sorted(expected.id)
    assert str(rows.timestamp.dt.tz) == "UTC"


def test_manifest_opens_each_file_once(store, monkeypatch):
    _, landing = store
    landing.read(WEEK1)
    opened = []
    original = landing.read_file
    monkeypatch.setattr(landing, "read_file", lambda name, columns=None: opened.append(name) or original(name, columns))
    landing.read(Window.parse("2026-01-12", "2026-01-14"))
    # only the two overlapping day files are read; none is re-indexed
    assert len(opened) == 2 and all("2026-01-1" in n for n in opened)


def test_a_gate_lists_the_landing_zone_once(store, monkeypatch):
    storage, landing = store
    landing.record_published(JAN6, {}, {"run_id": "r"})  # read from no file: the files of the 6th are late for it
    listings = []
    original = landing._listing
    monkeypatch.setattr(landing, "_listing", lambda: listings.append(1) or original())
    manifest = landing.manifest()
    batch = landing.read(WEEK1, manifest=manifest)
    assert Quarantine(storage).unplaced(landing, manifest) == []
    late = landing.late_files(manifest=manifest)
    assert len(listings) == 1 and len(batch.frame) > 0
    assert [f["file"] for f in late] == landing.files_for(JAN6) != []
    assert landing.late_files() == []  # marked as reported on disk


def test_every_row_read_is_accounted_for(store, stream):
    storage, landing = store
    landing.record_published(WEEK1, {}, {"run_id": "r"})
    batch = landing.read(Window.parse("2026-01-12T12:00", "2026-01-13"))
    account = batch.account
    # the two day files of the 12th: half the 12th in the window, its morning pending; none published
    assert account["read"] == account["window"] + account["pending"] + account["published_elsewhere"] + account["held"]
    assert account["window"] == len(batch.frame) == ((stream.timestamp >= "2026-01-12T12:00Z") & (stream.timestamp < "2026-01-13")).sum()


def test_landing_files_are_never_changed(store):
    storage, landing = store
    folder = Path(landing.root)
    before = {p: p.stat().st_mtime_ns for p in folder.iterdir()}
    batch = landing.read(WEEK1)
    storage.curated().replace(batch.frame, WEEK1, PUBLISH)
    Quarantine(storage).add(WEEK1, batch.raw, batch.files, {"results": []}, "# r", {"run_id": "r"})
    assert {p: p.stat().st_mtime_ns for p in folder.iterdir()} == before


def test_curated_rerun_replaces_never_duplicates_in_one_commit(week1):
    storage, table, frame = week1
    first = table.version()
    table.replace(frame, WEEK1, PUBLISH)
    again = storage.read_curated(WEEK1)
    assert len(again) == len(frame) and again.id.is_unique
    assert table.version() == first + 1  # one commit per replacement
    meta = table.history(1)[0]
    assert meta["driftloop.run_id"] == "manual__test" and meta["driftloop.window_start"] == WEEK1.start.isoformat()


def test_a_replacement_that_drops_many_rows_is_refused_unless_forced(week1):
    storage, table, frame = week1
    version = table.version()
    with pytest.raises(CuratedError, match=r"would drop \d+ of the \d+ rows.*force"):
        table.replace(frame.iloc[:10], WEEK1, PUBLISH, max_drop=0.2)
    assert table.version() == version and len(storage.read_curated(WEEK1)) == len(frame)  # nothing changed
    table.replace(frame.iloc[:10], WEEK1, Commit("publish", force=True), max_drop=0.2)
    assert len(storage.read_curated(WEEK1)) == 10
    assert table.history(1)[0]["driftloop.force"] == "true"


def test_neighbouring_windows_share_a_day_partition(store):
    storage, landing = store
    table = storage.curated()
    a, b = Window.parse("2026-01-05", "2026-01-05T12:00"), Window.parse("2026-01-05T12:00", "2026-01-06")
    table.replace(landing.read(a).frame, a, PUBLISH)
    table.replace(landing.read(b).frame, b, PUBLISH)
    table.replace(landing.read(a).frame, a, PUBLISH)
    day = storage.read_curated(JAN5)
    assert len(day) == len(landing.read(JAN5).frame) and day.id.is_unique


def test_an_id_reused_on_another_day_keeps_both_rows(store):
    storage, landing = store
    table = storage.curated()
    first = landing.read(JAN5).frame
    second = landing.read(JAN6).frame.copy()
    second.loc[second.index[0], "id"] = first["id"].iloc[0]
    table.replace(first, JAN5, PUBLISH)
    table.replace(second, JAN6, PUBLISH)
    assert len(storage.read_curated(JAN5)) == len(first)  # the older row is still there
    assert len(storage.read_curated(Window.parse("2026-01-05", "2026-01-07"))) == len(first) + len(second)


def test_a_float_never_lands_truncated_in_an_integer_column(bare_table):
    """delta-rs casts a batch to the table's schema: 1.5 would become 1 in a long column."""
    table = bare_table
    frame = two_rows(feature=[1, 2], n=[1, 2])
    table.replace(frame, JAN5, PUBLISH)
    table.replace(frame.assign(feature=[1.5, 2.5]), JAN5, PUBLISH)  # a numeric feature is a double from the start
    assert table.read(JAN5)["feature"].tolist() == [1.5, 2.5]
    with pytest.raises(CuratedError, match="column 'n' is double in this batch but int64"):
        table.replace(frame.assign(n=[1.5, 2.5]), JAN5, PUBLISH)
    table.replace(frame.assign(n=[3.0, None]), JAN5, PUBLISH)  # whole numbers with a gap, as a CSV reads them
    assert table.read(JAN5)["n"].tolist()[0] == 3 and pd.isna(table.read(JAN5)["n"].tolist()[1])
    with pytest.raises(CuratedError, match="column 'n' is .*string.* but int64"):
        table.replace(frame.assign(n=["a", "b"]), JAN5, PUBLISH)


def test_carried_integers_keep_every_digit(bare_table):
    big = [9007199254740993, 1234567890123456789]
    bare_table.replace(two_rows(account=big), JAN5, PUBLISH)
    assert bare_table.read(JAN5)["account"].tolist() == big


def test_restore_a_window_from_an_earlier_version(week1):
    from include.curated import restore_window

    storage, table, frame = week1
    good = table.version()
    table.replace(frame.iloc[:5], WEEK1, Commit("publish", force=True))
    result = restore_window(table, WEEK1, good, Commit("restore", user="ops", reason="bad re-delivery"))
    assert len(storage.read_curated(WEEK1)) == len(frame)
    assert result["rows"] == len(frame) and table.history(1)[0]["driftloop.operation"] == "restore"


def test_object_store_urls_other_than_delta_ones_are_refused(tmp_path):
    storage = Storage("memory://store-test", str(tmp_path), "timestamp")
    with pytest.raises(CuratedError, match="memory:// cannot hold the curated Delta table"):
        storage.curated()


def test_memory_landing_zone(tmp_path, stream):
    write_daily_batches(stream[stream.timestamp < "2026-01-08"], "memory://landing-test")
    storage, landing = zone(tmp_path, "memory://landing-test")
    w = Window.parse("2026-01-05", "2026-01-08")
    storage.curated().replace(landing.read(w).frame, w, PUBLISH)
    assert len(storage.read_curated(w)) == (stream.timestamp < "2026-01-08").sum()


def test_missing_landing_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="landing zone"):
        zone(tmp_path)[1].read(WEEK1)


@pytest.mark.parametrize(
    ("fmt", "values", "expected"),
    [
        ("iso", ["2026-01-05T10:00:00", "2026-01-05T12:00:00+02:00"], ["2026-01-05T10:00:00+00:00"] * 2),
        ("iso", ["05/01/2026", "yesterday"], [None, None]),  # never guessed as May 1st or January 5th
        ("iso", [1767607200, 1767607200], [None, None]),  # a number is not an ISO timestamp
        ("epoch_s", [1767607200, "1767607200"], ["2026-01-05T10:00:00+00:00"] * 2),
        ("epoch_ms", [1767607200000, None], ["2026-01-05T10:00:00+00:00", None]),
        ("%d/%m/%Y %H:%M", ["05/01/2026 10:00", "2026-01-05T10:00:00"], ["2026-01-05T10:00:00+00:00", None]),
    ],
)
def test_timestamp_formats_are_applied_exactly(fmt, values, expected):
    parsed = parse_timestamps(pd.Series(values, dtype=object), fmt)
    assert [None if pd.isna(v) else v.isoformat() for v in parsed] == expected
    assert str(parsed.dtype) == "datetime64[us, UTC]"


def test_unreadable_timestamps_reach_the_gate_instead_of_blocking_every_window(tmp_path, landing_dir, stream):
    day = between(stream, "2026-01-05", "2026-01-06").copy()
    bad = day.astype({"timestamp": str}).reset_index(drop=True)
    bad.loc[3, "timestamp"] = "not-a-date"
    bad.to_csv(landing_dir / "day1.csv", index=False)
    between(stream, "2026-01-06", "2026-01-07").to_parquet(landing_dir / "day2.parquet")
    pd.DataFrame({"id": [1], "x": [2]}).to_csv(landing_dir / "no_timestamp.csv", index=False)
    _, landing = zone(tmp_path)
    other = landing.read(JAN6).frame  # not blocked by the bad files
    assert len(other) > 0 and other.timestamp.notna().all()
    rows = landing.read(JAN5).frame
    assert len(rows) == len(day) and rows.timestamp.isna().sum() == 1
    files = landing.manifest()["files"]
    assert files[f"{landing_dir}/day1.csv"]["bad_timestamps"] == 1
    assert "no column 'timestamp'" in files[f"{landing_dir}/no_timestamp.csv"]["error"]


@pytest.mark.parametrize(
    ("name", "frame", "rule"),
    [
        ("renamed.csv", pd.DataFrame({"id": [1, 2], "event_time": ["2026-01-05", "2026-01-05"]}), "event-time column must exist"),
        ("epoch.csv", pd.DataFrame({"id": [1, 2], "timestamp": [1767607200, 1767610800]}), "data.timestamp_format (iso)"),
    ],
)
def test_a_file_that_belongs_to_no_window_is_quarantined_once_as_a_copy(tmp_path, landing_dir, stream, name, frame, rule):
    between(stream, "2026-01-05", "2026-01-06").to_parquet(landing_dir / "day1.parquet")
    frame.to_csv(landing_dir / name, index=False)
    raw = (landing_dir / name).read_bytes()
    storage, landing = zone(tmp_path)
    jail = Quarantine(storage)
    landing.read(JAN5)

    first = jail.unplaced(landing)
    assert [(u["file"], u["rows"]) for u in first] == [(f"{landing_dir}/{name}", 2 if "epoch" in name else None)]
    folder = Path(first[0]["quarantine"])
    assert (folder / name).read_bytes() == raw == (landing_dir / name).read_bytes()
    report = (folder / "report.md").read_text()
    assert "`timestamp`" in report and name in report and rule in report
    assert jail.unplaced(landing) == []  # once per file version

    # delivered again with readable times: indexed, placed, nothing more quarantined
    pd.DataFrame({"id": [1, 2], "timestamp": ["2026-01-05T01:00:00", "2026-01-05T02:00:00"]}).to_csv(landing_dir / name, index=False)
    assert landing.read(JAN5).frame.id.isin([1, 2]).sum() >= 2
    assert jail.unplaced(landing) == []


def test_a_file_landing_after_its_window_was_published_is_late(store, stream):
    storage, landing = store
    batch = landing.read(JAN6)
    landing.record_published(JAN6, batch.files, {"run_id": "r1"})
    assert landing.late_files() == []
    extra = between(stream, "2026-01-06", "2026-01-06T06:00").assign(id=lambda f: f.id + 9_000_000)
    extra.to_csv(f"{landing.root}/resent.csv", index=False)
    late = landing.late_files()
    assert late == [{"file": f"{landing.root}/resent.csv", "windows": [{**JAN6.as_dict(), "rows": len(extra)}], "rows": len(extra)}]
    assert landing.late_files() == []  # told once
    assert [w for _, w in landing.late_runs()] == [JAN6]  # reported, but still waiting for a re-ingest
    again = landing.read(JAN6)
    assert len(again.frame) == len(batch.frame) + len(extra)
    landing.record_published(JAN6, again.files, {"run_id": "r2"})
    assert landing.late_runs() == []


def test_quarantine_entries_are_numbered_and_keep_mixed_types_per_file(tmp_path):
    jail = Quarantine(zone(tmp_path)[0])
    a = pd.DataFrame({"id": [1], "timestamp": ["2026-01-05T01:00"], "x": [1]})
    b = pd.DataFrame({"id": [2], "timestamp": ["2026-01-05T02:00"], "x": ["one"]})
    mixed = pd.DataFrame({"id": [3], "timestamp": ["2026-01-05T03:00"], "x": [object()]}).astype({"x": object})
    mixed.loc[0, "x"] = 1
    mixed = pd.concat([mixed, pd.DataFrame({"id": [4], "timestamp": ["x"], "x": ["two"]})], ignore_index=True)
    first = jail.add(JAN5, {"a.csv": a, "b.csv": b, "c.parquet": mixed}, {}, {"results": []}, "# r", {"run_id": "r1"})
    second = jail.add(JAN5, {"a.csv": a}, {}, {"results": []}, "# r", {"run_id": "r2"})
    assert first["id"].startswith("0001__") and second["id"].startswith("0002__")
    rows = jail.rows(first["id"])
    assert rows["b.csv"]["x"].tolist() == ["one"] and rows["a.csv"]["x"].tolist() == [1]
    assert rows["c.parquet"]["x"].astype(str).tolist() == ["1", "two"]  # kept as text, not lost
    assert [h.as_dict() for h in jail.holds(Window.parse("2026-01-01", "2026-01-08"))] == [JAN5.as_dict()]
    assert jail.holds(JAN5) == []  # a window is never held from itself
    assert jail.resolve(JAN5, {"run_id": "r3"}) == [first["id"], second["id"]]
    assert jail.entries("open") == [] and jail.entry(first["id"])["history"][-1]["run_id"] == "r3"


def test_a_row_dated_2099_travels_with_its_file_not_with_every_window(tmp_path, landing_dir, stream):
    day = between(stream, "2026-01-05", "2026-01-06").copy()
    odd = day.head(1).assign(id=999_999, timestamp=pd.Timestamp("2099-01-01T00:00Z"))
    pd.concat([day, odd]).to_parquet(landing_dir / "export.parquet")
    between(stream, "2026-01-12", "2026-01-13").to_parquet(landing_dir / "later.parquet")
    _, landing = zone(tmp_path)
    assert landing.files_for(Window.parse("2026-01-12", "2026-01-13")) == [f"{landing_dir}/later.parquet"]
    now = pd.Timestamp("2026-01-06T01:00Z").to_pydatetime()
    batch = landing.read(JAN5, now=now, skew=pd.Timedelta(hours=1))
    # the row from the future joins the batch (the gate's max_clock_skew rule names it), not "pending"
    assert batch.account["window"] == len(day) and batch.account["future"] == 1 and batch.account["pending"] == 0
    assert len(batch.frame) == len(day) + 1


def test_gate_warnings_of_published_windows_reach_the_interval(store):
    _, landing = store
    landing.record_published(WEEK1, {}, {"run_id": "r", "warnings": ["column 'x': range"]})
    assert landing.published_warnings(JAN6) == ["column 'x': range"]
    assert landing.published_warnings(Window.parse("2026-01-12", "2026-01-13")) == []
