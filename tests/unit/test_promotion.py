import pandas as pd
import pytest

from include import promotion, training
from include.champion import ChampionMoved, to_archive
from include.registry import VersionInfo


@pytest.mark.parametrize(
    ("challenger", "champion", "margin", "promote"),
    [
        (0.8, None, 0.0, True),
        (0.8, 0.7, 0.0, True),
        (0.7, 0.7, 0.0, False),
        (0.71, 0.7, 0.02, False),
        (0.6, 0.7, 0.0, False),
        (-2.0, -3.0, 0.5, True),
    ],
)
def test_decide(challenger, champion, margin, promote):
    d = promotion.decide(challenger, champion, margin, "m")
    assert d.promote is promote
    assert f"{challenger:.4f}" in d.reason


def test_comparison_rows_leave_out_the_champions_training_rows(stream):
    rows = promotion.comparison_rows(stream, "timestamp", "2026-02-02T00:00:00+00:00")
    assert rows.timestamp.min() >= pd.Timestamp("2026-02-02", tz="UTC")
    assert len(promotion.comparison_rows(stream, "timestamp", None)) == len(stream)


@pytest.fixture
def models(stream, settings):
    old = training.fit(stream[stream.timestamp < "2026-01-26"], settings)
    new = training.fit(stream[(stream.timestamp >= "2026-02-02") & (stream.timestamp < "2026-02-09")], settings)
    return old, new


def test_compare_on_drifted_rows_prefers_the_model_that_saw_the_drift(stream, settings, models):
    old, new = models
    champion = VersionInfo(1, "r", "2025-12-29T00:00:00+00:00", "2026-01-26T00:00:00+00:00", "initial")
    rows = stream[stream.timestamp >= "2026-02-09"]
    result = promotion.compare(settings, rows, new, old, champion)
    assert result["better"] and result["challenger_score"] > result["champion_score"]
    assert result["rows"] == len(rows) and result["champion_version"] == 1
    # and the other way round it is refused
    assert not promotion.compare(settings, rows, old, new, champion)["better"]


def test_compare_refuses_without_out_of_time_rows(stream, settings, models):
    old, new = models
    champion = VersionInfo(1, "r", "2026-01-01T00:00:00+00:00", "2026-03-01T00:00:00+00:00", "initial")
    with pytest.raises(promotion.PromotionRejected, match=r"only 0 out-of-time rows .* v1"):
        promotion.compare(settings, stream, new, old, champion)


def test_first_challenger_wins_without_champion(stream, settings, models):
    _, new = models
    result = promotion.compare(settings, stream[stream.timestamp >= "2026-02-09"], new, None, None)
    assert result["better"] and result["champion_score"] is None


def test_promotion_errors_are_driftloop_errors_that_fail_without_retry():
    from include.errors import DriftloopError, RegistryError

    assert issubclass(promotion.PromotionRejected, DriftloopError)
    assert issubclass(ChampionMoved, RegistryError)


def test_a_challenger_that_does_not_beat_the_baseline_is_refused_even_without_a_champion():
    gate = promotion.beats_baseline(0.49, 0.5, "roc_auc")
    d = promotion.decide(0.49, None, 0.0, "roc_auc", [gate])
    assert not d.promote and d.refused_by == ["baseline"] and d.reason.startswith("does not beat the baseline: challenger roc_auc 0.4900")
    assert [c["check"] for c in d.checks] == ["baseline", "champion"] and d.checks[1]["passed"]
    # on the comparison rows it wins, but not on the folds' mean: refused too
    gate = promotion.beats_baseline(0.8, 0.5, "roc_auc", cv=(0.49, 0.5))
    assert not gate["passed"] and "CV mean 0.4900 against 0.5000" in gate["detail"]
    # beating the baseline but not the champion is no gate refusal
    d = promotion.decide(0.7, 0.8, 0.0, "roc_auc", [promotion.beats_baseline(0.7, 0.5, "roc_auc", cv=(0.7, 0.5))])
    assert not d.promote and d.refused_by == [] and "does not beat champion" in d.reason


def test_compare_scores_the_baseline_on_the_same_rows_and_refuses_a_model_worse_than_it(stream, settings, models):
    old, _ = models
    rows = stream[stream.timestamp < "2026-01-26"]
    inverted = training.fit(rows.assign(repaid=1 - rows.repaid), settings)  # ranks the rows backwards
    baseline = {"strategy": "prior", "value": float(rows.repaid.mean())}
    result = promotion.compare(settings, rows, inverted, None, None, baseline)
    assert result["baseline_score"] == pytest.approx(0.5) and result["challenger_score"] < 0.5
    assert not result["better"] and result["checks"][0] == {"check": "baseline", "passed": False, "detail": result["reason"]}
    assert promotion.compare(settings, rows, old, None, None, baseline)["better"]


@pytest.mark.parametrize(
    ("versions", "keep", "protected", "archived", "expected"),
    [
        (list(range(1, 13)), 10, set(), set(), [1, 2]),
        (list(range(1, 13)), 10, {1}, set(), [2]),  # the champion stays, however old
        (list(range(1, 13)), 3, {2, 5}, {1, 3}, [4, 6, 7, 8, 9]),  # archived ones are not archived again
        ([3, 1, 2], 5, set(), set(), []),
        (list(range(1, 13)), 1, set(range(1, 13)), set(), []),
    ],
)
def test_retention_keeps_the_newest_and_every_protected_version(versions, keep, protected, archived, expected):
    assert to_archive(versions, keep, protected, archived) == expected
