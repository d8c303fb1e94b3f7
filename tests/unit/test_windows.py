from datetime import UTC, datetime

import pytest

from include.storage import Window
from include.windows import NoWindow, interval_window, retrain_end


def test_conf_wins_and_naive_means_utc():
    w = interval_window({"start": "2026-01-05", "end": "2026-01-12T00:00:00"}, [{"start": "2020-01-01", "end": "2020-01-02"}])
    assert w == Window(datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 12, tzinfo=UTC))


def test_asset_event_windows_are_joined():
    w = interval_window({}, [{"start": "2026-01-12", "end": "2026-01-19"}, {"start": "2026-01-05", "end": "2026-01-12"}])
    assert (w.start.day, w.end.day) == (5, 19)


def test_data_interval_used_last_and_zero_length_rejected():
    start, end = datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 6, tzinfo=UTC)
    assert interval_window({}, [], (start, end)) == Window(start, end)
    with pytest.raises(NoWindow, match="conf"):
        interval_window({}, [], (start, start))


def test_half_given_window_is_an_error():
    with pytest.raises(NoWindow, match="both"):
        interval_window({"start": "2026-01-05"})


def test_offset_is_converted_to_utc():
    w = interval_window({"start": "2026-01-05T02:00:00+02:00", "end": "2026-01-06T00:00:00Z"})
    assert w.start == datetime(2026, 1, 5, tzinfo=UTC)


def test_window_must_have_positive_length():
    with pytest.raises(ValueError, match="not after"):
        Window.parse("2026-01-05", "2026-01-05")


def test_retrain_end_order():
    assert retrain_end({"end": "2026-02-02"}, None, "2026-03-01T10:00:00Z") == "2026-02-02T00:00:00+00:00"
    assert retrain_end({}, "2026-02-09T00:00:00Z", "2026-03-01") == "2026-02-09T00:00:00+00:00"
    assert retrain_end({}, None, "2026-03-01T10:00:00Z") == "2026-03-01T10:00:00+00:00"
    with pytest.raises(NoWindow):
        retrain_end({}, None, None)


def test_missing_timestamp_is_an_error_not_nat():
    with pytest.raises(ValueError, match="is not a timestamp"):
        Window.parse(None, "2026-01-05")


def test_monitor_keeps_queued_intervals_apart():
    from include.windows import interval_windows

    events = [
        {"start": "2026-03-01", "end": "2026-03-02"},
        {"start": "2026-01-05", "end": "2026-01-06"},
        {"start": "2026-01-05", "end": "2026-01-06"},
    ]
    spans = interval_windows({}, events)
    assert [(w.start.month, w.start.day) for w in spans] == [(1, 5), (3, 1)]
    assert interval_windows({"start": "2026-01-05", "end": "2026-01-12"}, events) == [Window.parse("2026-01-05", "2026-01-12")]
    with pytest.raises(NoWindow):
        interval_windows({}, [])
