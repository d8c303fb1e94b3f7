"""The drift engine against Evidently itself: the method table, each method's rule, the automatic
choice, and the two methods computed here (Wasserstein, Jensen-Shannon) to 1e-9 of Evidently's."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from evidently.legacy.calculations.stattests import registry
from evidently.legacy.core import ColumnType

from include import drift, stattests

KINDS = {ColumnType.Numerical: "numerical", ColumnType.Categorical: "categorical"}
rng = np.random.default_rng(7)


def evidently_test(name: str):
    return next(iter(registry._registered_stat_tests[name].values()))


def test_the_method_table_is_evidentlys():
    registered = {name: tests for name, tests in registry._registered_stat_tests.items() if ColumnType.Text not in tests}
    assert set(registered) == set(stattests.METHODS)
    for name, method in stattests.METHODS.items():
        test = next(iter(registered[name].values()))
        assert (test.display_name, test.default_threshold) == (method.display, method.default_threshold), name
        assert {KINDS[t] for t in test.allowed_feature_types} == set(method.kinds), name


def sample(kind: str, shift: float = 0.0, rows: int = 400):
    if kind == "numerical":
        return pd.Series(rng.normal(shift, 1, rows))
    return pd.Series(rng.choice(["a", "b", "c"], rows, p=[0.5 - shift / 2, 0.3, 0.2 + shift / 2]))


@pytest.mark.parametrize("name", sorted(stattests.METHODS))
def test_each_rule_is_the_one_evidently_applies_even_at_the_threshold(name):
    """At a threshold equal to the score, ``<`` and ``<=`` part ways: Anderson-Darling,
    Cramer-von Mises, Epps-Singleton, MMD and TVD are p-values although their names do not say so."""
    method = stattests.METHODS[name]
    kind = method.kinds[0]
    test = evidently_test(name)
    column_type = ColumnType.Numerical if kind == "numerical" else ColumnType.Categorical
    ref, cur = sample(kind, rows=150 if name == "empirical_mmd" else 400), sample(kind, 0.3, rows=150 if name == "empirical_mmd" else 400)
    if name == "fisher_exact":  # two categories only
        ref, cur = ref.where(ref == "a", "b"), cur.where(cur == "a", "b")
    np.random.seed(0)
    score = test(ref, cur, column_type, None).drift_score
    for threshold in (score, score * 0.5, score * 2 + 1e-9):
        np.random.seed(0)
        evidently = test(ref, cur, column_type, threshold)
        assert evidently.drift_score == pytest.approx(score)
        assert method.drifted(score, threshold) is bool(evidently.drifted), (name, threshold)


@pytest.mark.parametrize("kind", ["numerical", "categorical"])
@pytest.mark.parametrize("ref_rows", [50, 1000, 1001, 3000])
@pytest.mark.parametrize("distinct", [1, 2, 3, 5, 6, 40])
def test_the_automatic_choice_is_evidentlys(kind, ref_rows, distinct):
    ref = pd.Series(rng.integers(0, distinct, ref_rows)).astype(float if kind == "numerical" else str)
    cur = pd.Series(rng.integers(0, distinct, 200)).astype(float if kind == "numerical" else str)
    column_type = ColumnType.Numerical if kind == "numerical" else ColumnType.Categorical
    expected = registry._get_default_stattest(ref, cur, column_type).name
    result = drift.series_drift(ref, cur, kind)
    assert result["method"] == expected


def numeric_cases():
    yield "shift", rng.normal(0, 1, 5000), rng.normal(0.2, 1, 4000)
    yield "equal sizes", rng.normal(0, 1, 3000), rng.normal(0, 1.3, 3000)
    yield "ties", np.round(rng.normal(0, 1, 2500), 1), np.round(rng.normal(0.1, 1, 1700), 1)
    yield "tiny current", rng.normal(0, 1, 2000), rng.normal(3, 1, 3)
    yield "integers", rng.integers(0, 30, 4000).astype(float), rng.integers(5, 35, 999).astype(float)
    yield "few values", rng.integers(0, 4, 4000).astype(float), rng.integers(0, 5, 1200).astype(float)
    yield "constant reference", np.full(1500, 2.0), rng.normal(2, 1, 900)
    yield "skewed", rng.lognormal(0, 2, 6000), rng.lognormal(0.1, 2, 2500)


@pytest.mark.parametrize(("case", "ref", "cur"), list(numeric_cases()), ids=[c[0] for c in numeric_cases()])
def test_wasserstein_and_jensenshannon_match_evidentlys_functions(case, ref, cur):
    ref_s, cur_s = pd.Series(ref), pd.Series(cur)
    for name in ("wasserstein", "jensenshannon"):
        evidently = evidently_test(name)(ref_s, cur_s, ColumnType.Numerical, None)
        ours = drift.series_drift(ref_s, cur_s, "numerical", method=name)
        assert ours["score"] == pytest.approx(evidently.drift_score, rel=1e-9, abs=1e-12), (case, name)
        assert ours["drifted"] is bool(evidently.drifted), (case, name)


@pytest.mark.parametrize(
    ("case", "ref", "cur"),
    [
        ("shifted frequencies", ["a"] * 600 + ["b"] * 400 + ["c"] * 300, ["a"] * 300 + ["b"] * 300 + ["c"] * 400),
        ("a new category", ["a"] * 700 + ["b"] * 400, ["a"] * 500 + ["b"] * 300 + ["new"] * 200),
        ("a category gone", ["a"] * 600 + ["b"] * 400 + ["c"] * 10, ["a"] * 600 + ["b"] * 400),
        ("integer codes", [1] * 700 + [2] * 200 + [3] * 150, [1] * 400 + [2] * 400 + [3] * 200),
        ("flags", [True] * 700 + [False] * 500, [True] * 300 + [False] * 900),
    ],
)
def test_jensenshannon_matches_evidently_on_categories(case, ref, cur):
    ref_s, cur_s = pd.Series(ref, dtype=object), pd.Series(cur, dtype=object)
    evidently = evidently_test("jensenshannon")(ref_s, cur_s, ColumnType.Categorical, None)
    ours = drift.series_drift(ref_s, cur_s, "categorical")
    assert ours["method"] == "jensenshannon"
    assert ours["score"] == pytest.approx(evidently.drift_score, rel=1e-9, abs=1e-12), case
    assert ours["drifted"] is bool(evidently.drifted)


def test_wasserstein_sorted_is_scipys_on_any_sizes():
    from scipy.stats import wasserstein_distance

    for n, m in [(1, 1), (1, 7), (7, 3), (13, 13), (1000, 999), (500, 2)]:
        u, v = np.sort(np.round(rng.normal(size=n), 1)), np.sort(np.round(rng.normal(1, 2, size=m), 1))
        assert drift.wasserstein_sorted(u, v) == pytest.approx(wasserstein_distance(u, v), rel=1e-12, abs=1e-15)


def test_any_other_method_is_evidentlys_own_function_and_verdict():
    ref, cur = pd.Series(rng.normal(0, 1, 3000)), pd.Series(rng.normal(0.05, 1, 2000))
    for name in ("psi", "anderson", "cramer_von_mises", "ks", "kl_div", "hellinger"):
        np.random.seed(0)
        evidently = evidently_test(name)(ref, cur, ColumnType.Numerical, None)
        np.random.seed(0)
        ours = drift.series_drift(ref, cur, "numerical", method=name)
        assert (ours["score"], ours["drifted"], ours["threshold"]) == (
            pytest.approx(evidently.drift_score),
            bool(evidently.drifted),
            evidently.actual_threshold,
        ), name
        assert ours["method_name"] == stattests.METHODS[name].display


def test_a_configured_method_and_threshold_decide():
    ref, cur = pd.Series(rng.normal(0, 1, 3000)), pd.Series(rng.normal(0.15, 1, 3000))
    assert drift.series_drift(ref, cur, "numerical")["drifted"] is True  # Wasserstein, 0.1
    strict = drift.series_drift(ref, cur, "numerical", method="wasserstein", threshold=0.3)
    assert strict["drifted"] is False and strict["threshold"] == 0.3
    with pytest.raises(ValueError, match="'chisquare' does not take numerical columns"):
        drift.series_drift(ref, cur, "numerical", method="chisquare")
    with pytest.raises(ValueError, match="unknown drift method 'wasserstien'"):
        drift.series_drift(ref, cur, "numerical", method="wasserstien")


def test_column_drift_reads_overrides_and_infinities_are_nulls():
    data = SimpleNamespace(numeric=["a", "b"], categorical=["c"], features=["a", "b", "c"])
    reference = pd.DataFrame({"a": rng.normal(0, 1, 3000), "b": rng.normal(0, 1, 3000), "c": rng.choice(["x", "y"], 3000)})
    current = pd.DataFrame({"a": rng.normal(0, 1, 2000), "b": rng.normal(0, 1, 2000), "c": rng.choice(["x", "y"], 2000)})
    current.loc[:499, "a"] = np.inf
    override = SimpleNamespace(method="psi", threshold=0.2)
    columns = drift.column_drift(reference, current, data, overrides={"b": override}, workers=2)
    assert columns["a"]["note"].startswith("1500 of 2000 current rows") and columns["a"]["drifted"] is False
    assert (columns["b"]["method"], columns["b"]["threshold"]) == ("psi", 0.2)
    assert columns["c"]["method"] == "jensenshannon"
    assert columns == drift.column_drift(reference, current, data, overrides={"b": override}, workers=1)


def test_the_report_uses_the_verdicts_methods_on_a_sample_and_says_so():
    data = SimpleNamespace(numeric=["a", "n"], categorical=["c"], features=["a", "n", "c"])
    reference = pd.DataFrame(
        {"a": rng.normal(0, 1, 800), "n": rng.integers(0, 3, 800).astype(float), "c": rng.choice(["x", "y", "z"], 800)}
    )
    current = pd.DataFrame({"a": rng.normal(1, 1, 3000), "n": rng.integers(0, 3, 3000).astype(float), "c": rng.choice(["x", "y"], 3000)})
    columns = drift.column_drift(reference, current, data, overrides={"a": SimpleNamespace(method="anderson", threshold=None)})
    assert columns["n"]["method"] == "chisquare"  # Evidently's choice for few numbers in a small reference
    html = drift.drift_report(reference, current, data, columns, 0.5, rows=500)
    assert "a random sample of 500 of 3000 current rows and 500 of 800 reference rows" in html
    assert "Anderson-Darling" in html
