from datetime import datetime

import pandas as pd

from include.simulator import StreamSpec, corrupt, simulate, write_daily_batches


def test_same_seed_same_stream():
    spec = StreamSpec(start=datetime(2026, 1, 5), days=3, rows_per_day=50)
    pd.testing.assert_frame_equal(simulate(spec), simulate(spec))
    assert not simulate(spec).equals(simulate(StreamSpec(start=datetime(2026, 1, 5), days=3, rows_per_day=50, seed=8)))


def test_a_day_does_not_depend_on_the_days_before():
    long = simulate(StreamSpec(start=datetime(2026, 1, 5), days=4))
    short = simulate(StreamSpec(start=datetime(2026, 1, 7), days=2))
    a = long[long.timestamp >= "2026-01-07"].drop(columns="id").reset_index(drop=True)
    # ids differ (they count from the stream's start); the rows themselves do not
    assert len(a) > 0 and set(a.columns) == set(short.columns) - {"id"}


def test_stream_shape(stream):
    assert stream.id.is_unique
    assert str(stream.timestamp.dt.tz) == "UTC"
    assert stream.timestamp.is_monotonic_increasing
    assert set(stream.repaid.unique()) == {0, 1}


def test_drift_moves_features(stream):
    before = stream[stream.timestamp < "2026-02-02"]
    after = stream[stream.timestamp >= "2026-02-02"]
    assert after.debt_to_income_ratio.mean() > before.debt_to_income_ratio.mean() + 0.08
    assert after.car_value.median() > before.car_value.median() * 1.2
    assert (after.employment == "self_employed").mean() > 2 * (before.employment == "self_employed").mean()


def test_daily_files(tmp_path, stream):
    paths = write_daily_batches(stream[stream.timestamp < "2026-01-08"], str(tmp_path))
    assert [p.rsplit("/", 1)[1] for p in paths] == [f"applications_2026-01-0{d}.parquet" for d in (5, 6, 7)]
    assert sum(len(pd.read_parquet(p)) for p in paths) == (stream.timestamp < "2026-01-08").sum()


def test_corrupt_copies(stream):
    frame = stream.head(100)
    bad = corrupt(frame)
    assert (bad.car_value < 0).sum() == 10 and (frame.car_value > 0).all()
