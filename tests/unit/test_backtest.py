"""The backtest's policies and its summary, on records made here (the replay itself runs the real
pipeline: tests/integration/test_backtest.py)."""

from datetime import datetime

import pandas as pd
import pytest

from include import backtest, charts
from include.backtest import Policy, PolicyError, parse_policies
from include.simulator import StreamSpec, simulate


@pytest.mark.parametrize(
    ("text", "every", "drift", "name"),
    [
        ("static", None, False, "static"),
        ("every:4", 4, False, "every:4"),
        ("drift", None, True, "drift"),
        (" drift + every:12 ", 12, True, "drift+every:12"),
    ],
)
def test_policies_are_read(text, every, drift, name):
    policy = Policy.parse(text)
    assert (policy.every, policy.drift, policy.name) == (every, drift, name)


@pytest.mark.parametrize("text", ["weekly", "every:0", "every:x", "static+drift", "every:2+every:3", ""])
def test_a_wrong_policy_is_refused(text):
    with pytest.raises(PolicyError):
        parse_policies(text)


def test_a_policy_named_twice_is_refused():
    with pytest.raises(PolicyError, match="twice"):
        parse_policies("drift,static,drift")


def test_every_n_retrains_at_the_end_of_every_nth_interval():
    every = Policy.parse("every:3")
    assert [p for p in range(10) if every.scheduled(p)] == [2, 5, 8]
    assert not any(Policy.parse("drift").scheduled(p) for p in range(10))


def _interval(start: str, metric, drift, business=None) -> dict:
    return {"start": start, "end": start, "metric": metric, "drift": drift, "drift_share": 0.6 if drift else 0.1, "business": business}


STARTS = [f"2026-02-{d:02d}T00:00:00+00:00" for d in (2, 9, 16, 23)] + ["2026-03-02T00:00:00+00:00", "2026-03-09T00:00:00+00:00"]


def _result() -> dict:
    def record(metrics, drifts, retrains):
        intervals = [_interval(s, m, d) for s, m, d in zip(STARTS, metrics, drifts, strict=True)]
        runs = [{"reason": "initial", "end": STARTS[0], "start": STARTS[0], "promoted": True, "version": 1, "detail": "first"}]
        runs += [{"reason": r, "end": e, "start": e, "promoted": p, "version": 2, "detail": "why"} for r, e, p in retrains]
        return {
            "retrains": [r["end"] for r in runs[1:]],
            "promotions": [r["end"] for r in runs[1:] if r["promoted"]],
            "metric": {i["start"]: i["metric"] for i in intervals},
            "business": {i["start"]: None for i in intervals},
            "drift_share": {i["start"]: i["drift_share"] for i in intervals},
            "rollbacks": [],
            "intervals": [{**i, "state": "monitored", "detail": None} for i in intervals],
            "retrain_runs": runs,
            "compute_seconds": 10.0,
            "retrain_seconds": 4.0,
        }

    static = record([0.8, 0.8, 0.6, 0.6, 0.6, None], [False, False, True, True, True, True], [])
    drift = record([0.8, 0.8, 0.6, 0.6, 0.8, 0.8], [False, False, True, True, False, False], [("drift", STARTS[4], True)])
    every = record([0.8, 0.8, 0.6, 0.6, 0.7, 0.8], [False] * 6, [("schedule", STARTS[2], False), ("schedule", STARTS[4], True)])
    result = {
        "name": "car_loans",
        "config": "c.yaml",
        "config_digest": "0" * 64,
        "code_version": "abc",
        "metric": "roc_auc",
        "business_metric": None,
        "drift_share": 0.5,
        "intervals": [{"start": s, "end": s} for s in STARTS],
        "policies": {"static": static, "every:2": every, "drift": drift},
        "onsets_from": "static",
    }
    result["onsets"] = backtest.onsets(static["intervals"])
    return result


def test_onsets_are_where_a_drift_begins():
    flags = [False, True, True, None, False, True]
    replayed = [_interval(s, 0.7, f) for s, f in zip(STARTS, flags, strict=True)]
    # an interval not monitored (None) neither ends nor starts a drift
    assert backtest.onsets(replayed) == [STARTS[1], STARTS[5]]
    assert backtest.onsets([_interval(STARTS[0], 0.7, True)]) == [STARTS[0]]


def test_the_summary_averages_before_and_after_each_onset():
    result = _result()
    assert result["onsets"] == [STARTS[2]]
    rows = {r["policy"]: r for r in backtest.summary_rows(result)}
    assert rows["static"]["phases"] == {"before 2026-02-16": pytest.approx(0.8), "from 2026-02-16": pytest.approx(0.6)}  # None left out
    assert rows["drift"]["phases"]["from 2026-02-16"] == pytest.approx(0.7)
    assert (rows["every:2"]["retrains"], rows["every:2"]["promotions"], rows["drift"]["retrains"]) == (2, 1, 1)
    table = backtest.summary_table(result)
    assert table.splitlines()[0].startswith("| policy | roc_auc before 2026-02-16 | roc_auc from 2026-02-16 | roc_auc overall | retrains")
    assert "| drift | 0.8000 | 0.7000 | 0.7333 | 1 | 1 | 0 | 10.0 (4.0) |" in table
    summary = backtest.summary_markdown(result)
    assert "Drift onsets the monitor found (policy `static`, drift share >= 0.5): 2026-02-16." in summary
    assert "drift at 2026-03-02 on 2026-03-02..2026-03-02: v2 promoted (why)" in summary
    assert "- `static`: none" in summary


def test_without_an_onset_the_summary_has_one_phase():
    result = _result()
    result["onsets"] = []
    assert [label for label, _, _ in backtest.phases(result)] == ["all intervals"]
    assert "The monitor found no drift onset" in backtest.summary_markdown(result)


def test_the_picture_is_a_png():
    png = charts.policies_chart(_result())
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_simulated_drift_strength_and_ramp():
    """Strength 0 is the stable world; a ramp moves the applicant mix a little further each day;
    the default (a full step) is the demo's stream."""
    start, drift = datetime(2026, 1, 5), datetime(2026, 1, 12)
    stable = simulate(StreamSpec(start=start, days=21))
    assert simulate(StreamSpec(start=start, days=21, drift_start=drift, drift_strength=0.0)).equals(stable)
    step = simulate(StreamSpec(start=start, days=21, drift_start=drift))
    gradual = simulate(StreamSpec(start=start, days=21, drift_start=drift, drift_days=14))
    half = simulate(StreamSpec(start=start, days=21, drift_start=drift, drift_strength=0.5))
    for frame in (step, gradual, half):
        assert frame[frame.timestamp < pd.Timestamp(drift, tz="UTC")].equals(stable[stable.timestamp < pd.Timestamp(drift, tz="UTC")])

    def weekly_dti(frame):
        weeks = (frame.timestamp - pd.Timestamp(start, tz="UTC")).dt.days // 7
        return frame.groupby(weeks)["debt_to_income_ratio"].mean().round(3).tolist()

    assert weekly_dti(step)[1] == pytest.approx(0.46, abs=0.01)
    assert weekly_dti(half)[1] == pytest.approx(0.395, abs=0.01)
    ramp = weekly_dti(gradual)
    assert ramp[0] < ramp[1] < ramp[2] and ramp[1] < weekly_dti(step)[1]
    spec = StreamSpec(start=start, days=21, drift_start=drift, drift_days=4)
    at = pd.Timestamp(drift, tz="UTC")
    assert [spec.mix(at + pd.Timedelta(days=d), at) for d in (-1, 0, 1, 3, 9)] == [0.0, 0.25, 0.5, 1.0, 1.0]
