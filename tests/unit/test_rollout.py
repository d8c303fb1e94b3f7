"""Staged rollout as pure rules: which rows the canary serves, and when the live rows decide."""

import numpy as np
import pandas as pd
import pytest

from include import rollout

RUNNING = {"version": 3, "strategy": "shadow", "share": 0.0, "since": "2026-02-01T00:00:00+00:00", "champion": 2, "started_by": "r"}


def test_the_canary_share_is_deterministic_by_id_and_close_to_the_setting():
    ids = pd.Series(range(100_000, 120_000))
    served = rollout.in_canary(ids, 0.1)
    assert abs(served.mean() - 0.1) < 0.01
    shuffled = ids.sample(frac=1.0, random_state=2)
    np.testing.assert_array_equal(rollout.in_canary(shuffled, 0.1), served[shuffled.index - shuffled.index.min()])
    assert set(ids[rollout.in_canary(ids, 0.05)]) <= set(ids[served])  # a larger share keeps the smaller share's rows
    assert rollout.in_canary(pd.Series(["a-1", "a-1"]), 0.5).tolist() in ([True, True], [False, False])


def test_served_rows_take_the_canarys_score_and_say_who_served_them():
    frame = pd.DataFrame({"id": range(1000)})
    mine, theirs = np.full(1000, 0.2), np.full(1000, 0.9)
    canary = rollout.served(frame, {**RUNNING, "strategy": "canary", "share": 0.3}, mine, theirs, "id")
    by_canary = canary["role"] == "canary"
    assert 0.25 < by_canary.mean() < 0.35
    assert (canary["prediction"][by_canary] == 0.9).all() and (canary["prediction"][~by_canary] == 0.2).all()
    shadow = rollout.served(frame, RUNNING, mine, theirs, "id")
    assert (shadow["role"] == "champion").all() and (shadow["prediction"] == 0.2).all() and (shadow["candidate_prediction"] == 0.9).all()
    assert set(rollout.served(frame, None, mine, None, "id")) == {"prediction", "role"}


def _evidence(rows, champion_rows, mine, theirs):
    return {"rows": rows, "champion_rows": champion_rows, "candidate_metric": mine, "champion_metric": theirs, "intervals": []}


@pytest.mark.parametrize(
    ("strategy", "evidence", "action"),
    [
        ("shadow", _evidence(40, 40, 0.9, 0.6), "wait"),  # too few rows yet
        ("shadow", _evidence(60, 60, 0.8, 0.7), "promote"),
        ("shadow", _evidence(60, 60, 0.7, 0.7), "retire"),  # not better
        ("shadow", _evidence(60, 60, None, 0.7), "wait"),  # one class so far: no metric
        ("canary", _evidence(60, 500, 0.7, 0.7), "promote"),  # not worse
        ("canary", _evidence(60, 500, 0.69, 0.7), "retire"),
        ("canary", _evidence(60, 20, 0.9, 0.7), "wait"),
    ],
)
def test_the_live_rows_decide(strategy, evidence, action):
    decision = rollout.decide({**RUNNING, "strategy": strategy}, evidence, "roc_auc", min_rows=50, min_improvement=0.0)
    assert decision["action"] == action
    assert f"{strategy} v3" in decision["reason"]
    if action != "wait":
        assert (
            f"live roc_auc {evidence['candidate_metric']:.4f} against champion v2's {evidence['champion_metric']:.4f}" in decision["reason"]
        )
