"""The fairness gate (fairlearn's MetricFrame per group) and the business metric, as pure rules."""

import numpy as np
import pandas as pd
import pytest

from include import business, fairness
from include.config import BusinessSettings, ConfigError, load_settings
from tests.conftest import write_config


def _rows():
    # two groups of 100: the model approves 80% of "north" and 40% of "south"; "east" has 5 rows
    groups = pd.Series(["north"] * 100 + ["south"] * 100 + ["east"] * 5, name="region")
    scores = np.r_[np.r_[np.full(80, 0.9), np.full(20, 0.1)], np.r_[np.full(40, 0.9), np.full(60, 0.1)], np.full(5, 0.9)]
    target = pd.Series(np.r_[np.ones(70), np.zeros(30), np.ones(50), np.zeros(50), np.ones(5)].astype(int))
    return target, scores, groups


def test_the_gap_is_between_the_best_and_worst_group_with_enough_rows():
    target, scores, groups = _rows()
    result = fairness.measure(target, scores, groups, "selection_rate", [0, 1], min_group_rows=30)
    assert result["by_group"] == {"east": 1.0, "north": 0.8, "south": 0.4}
    assert result["judged"] == ["north", "south"] and result["gap"] == pytest.approx(0.4)  # east: 5 rows, left out
    passed, detail = fairness.judge(result, 0.1)
    assert (
        not passed and detail == "selection_rate across region groups: gap 0.4000 (north 0.8000, south 0.4000) exceeds fairness.max_gap 0.1"
    )
    assert fairness.judge(result, 0.5)[0]


def test_rates_read_predicted_classes_and_roc_auc_reads_scores_and_missing_groups_count():
    target, scores, groups = _rows()
    groups = groups.where(groups != "east", None)
    tpr = fairness.measure(target, scores, groups, "true_positive_rate", [0, 1], min_group_rows=1)
    assert tpr["by_group"]["(missing)"] == 1.0 and tpr["rows"]["(missing)"] == 5
    auc = fairness.measure(target, scores, groups, "roc_auc", [0, 1], min_group_rows=1)
    assert auc["by_group"]["(missing)"] is None  # one class only: no value, not judged
    assert "(missing)" not in auc["judged"]


def test_a_gap_that_cannot_be_measured_passes_and_says_so():
    target, scores, groups = _rows()
    result = fairness.measure(target, scores, groups, "selection_rate", [0, 1], min_group_rows=1000)
    passed, detail = fairness.judge(result, 0.0)
    assert result["gap"] is None and passed and detail.endswith("not judged")


def test_business_values():
    target, scores, _ = _rows()
    approval = business.value(BusinessSettings(metric="approval_rate"), "classification", scores)
    assert approval == {"metric": "approval_rate", "value": pytest.approx(125 / 205), "rows": 205}
    matrix = BusinessSettings(metric="expected_value", values={"tp": 100, "fp": -500, "fn": -20, "tn": 0})
    y = target.to_numpy().astype(float)
    acted = scores >= 0.5
    expected = np.mean(np.select([acted & (y == 1), acted & (y == 0), ~acted & (y == 1)], [100, -500, -20], 0))
    assert business.value(matrix, "classification", scores, y)["value"] == pytest.approx(expected)
    y[:10] = np.nan  # no outcome yet: left out
    assert business.value(matrix, "classification", scores, y)["rows"] == 195
    cost = BusinessSettings(metric="expected_value", unit_value=2.0)
    assert business.value(cost, "regression", np.array([1.0, 3.0]), np.array([2.0, 2.0]))["value"] == pytest.approx(-2.0)
    assert business.fell(0.4, 0.5, 0.05) is True and business.fell(0.47, 0.5, 0.05) is False and business.fell(None, 0.5, 0.0) is None


def test_the_config_checks_the_gates_fit_the_task(tmp_path):
    ok = load_settings(write_config(tmp_path, fairness={"group": "region", "max_gap": 0.1}, business={"metric": "approval_rate"}))
    assert ok.fairness.metric == "selection_rate" and ok.business.threshold == 0.5 and ok.promotion.max_business_drop == 0.0
    with pytest.raises(ConfigError, match=r"fairness.metric 'mae' is for regression"):
        load_settings(write_config(tmp_path, fairness={"group": "region", "metric": "mae", "max_gap": 0.1}))
    with pytest.raises(ConfigError, match=r"fairness.metric: .*unknown fairness metric 'parity'"):
        load_settings(write_config(tmp_path, fairness={"group": "region", "metric": "parity", "max_gap": 0.1}))
    with pytest.raises(ConfigError, match=r"business.values .* is required"):
        load_settings(write_config(tmp_path, business={"metric": "expected_value"}))
