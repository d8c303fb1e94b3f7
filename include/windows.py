"""Which window a run works on. Pure: takes what the run knows, returns a ``Window``.

Airflow 3 gives manual and asset-triggered runs no data interval, and cron runs a zero-length one
unless their timetable makes intervals. So the window travels explicitly: in the run conf (or the
UI form's Params, which carry the same keys), in the curated Asset event's ``extra``, or in the
data interval of a scheduled run, checked in that order.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from include.errors import RunConfError
from include.storage import Window, to_utc


class NoWindow(RunConfError):
    """The run carries no window, or one that cannot be read (a ``RunConfError``: retrying the
    task cannot fix its conf)."""


def _window(start, end, what: str) -> Window:
    """``Window.parse``, with an unreadable or empty span reported as ``NoWindow``."""
    try:
        return Window.parse(start, end)
    except ValueError as err:  # an unreadable timestamp, or end <= start
        raise NoWindow(f"{what}: {err}") from None


def interval_window(params: dict, extras: Iterable[dict] = (), interval: tuple | None = None) -> Window:
    """The ``[start, end)`` of an ingest or monitor run.

    Args:
        params: the run's params / conf; ``start`` and ``end`` (ISO strings) win when both are set.
        extras: ``extra`` dicts of the Asset events that triggered the run; their windows are
            joined (several ingest runs may be coalesced into one monitor run).
        interval: ``(data_interval_start, data_interval_end)`` of a scheduled run.

    Raises:
        NoWindow: none of these gives a window of positive length.
    """
    if params.get("start") and params.get("end"):
        return _window(params["start"], params["end"], "run conf start/end")
    if params.get("start") or params.get("end"):
        raise NoWindow("give both 'start' and 'end' in the run conf, or neither")
    spans = [_window(e["start"], e["end"], "asset event") for e in extras if e and e.get("start") and e.get("end")]
    if spans:
        return Window(min(s.start for s in spans), max(s.end for s in spans))
    if interval and interval[0] is not None and interval[1] is not None and interval[1] > interval[0]:
        return _window(interval[0], interval[1], "data interval")
    raise NoWindow('this run has no window: trigger it with conf {"start": ISO, "end": ISO}')


def interval_windows(params: dict, extras: Iterable[dict] = ()) -> list[Window]:
    """The windows a monitor run checks: the run conf's one window, else one per distinct Asset
    event (several ingest runs may have been queued for one monitor run: each interval keeps its
    own predictions and verdict), oldest first.

    Raises:
        NoWindow: neither gives a window.
    """
    if params.get("start") or params.get("end"):
        return [interval_window(params)]
    spans = {_window(e["start"], e["end"], "asset event") for e in extras if e and e.get("start") and e.get("end")}
    if not spans:
        raise NoWindow('this run has no window: trigger it with conf {"start": ISO, "end": ISO}')
    return sorted(spans, key=lambda w: (w.start, w.end))


def retrain_end(params: dict, scheduled_end, run_after) -> str:
    """The training window's end: conf ``end``, else the scheduled time, else when the run was
    requested (a manual trigger without an end trains up to that moment)."""
    for candidate in (params.get("end"), scheduled_end, run_after):
        if candidate:
            try:
                return to_utc(candidate).isoformat()
            except ValueError as err:
                raise NoWindow(f"run conf 'end': {err}") from None
    raise NoWindow('this run has no end: trigger it with conf {"end": ISO}')


def retrain_window(params: dict, scheduled_end, run_after, default_length: timedelta) -> Window:
    """The training window ``[end - length, end)`` of a retrain run: the end as ``retrain_end``
    finds it, the length from the conf's ``window`` (e.g. ``90D``) or ``default_length``; or
    ``[start, end)`` when the conf gives a ``start`` (a drift retrain that learns from the onset).

    Raises:
        NoWindow: no end, an unreadable end or start, a start not before the end, both ``start``
            and ``window``, or a ``window`` that is not a duration.
    """
    from include.config import parse_duration

    end = to_utc(retrain_end(params, scheduled_end, run_after))
    if params.get("start"):
        if params.get("window"):
            raise NoWindow("give the run conf 'start' or 'window', not both")
        return _window(params["start"], end, "run conf start/end")
    length = default_length
    if params.get("window"):
        try:
            length = parse_duration(params["window"])
        except ValueError as err:
            raise NoWindow(f"run conf 'window': {err}") from None
    return Window(end - length, end)
