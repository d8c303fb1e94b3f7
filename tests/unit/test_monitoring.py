from datetime import timedelta
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from include import charts, drift, labels, monitoring
from include.curated import Commit
from include.storage import Storage


def verdict(start, end, drift, handled=None, share=0.6, version=1, live=0.7, rows=2000):
    return {
        "start": start,
        "end": end,
        "rows": rows,
        "drift": drift,
        "handled": handled,
        "drift_share": share if drift else 0.1,
        "model_version": version,
        "live_metric": live,
    }


WEEKS = [f"2026-0{m}-{d:02d}T00:00:00+00:00" for m, d in ((1, 5), (1, 12), (1, 19), (1, 26), (2, 2), (2, 9))]


def test_drift_decision_uses_the_share():
    cols = {"a": {"drifted": True}, "b": {"drifted": False}, "c": {"drifted": True}, "d": {"drifted": False}}
    assert drift.drift_decision(cols, 0.5) == {
        "drift": True,
        "drift_share": 0.5,
        "drifted_columns": 2,
        "drifted": ["a", "c"],
        "column_issues": {},
    }
    assert drift.drift_decision(cols, 0.75)["drift"] is False


@pytest.mark.parametrize(
    ("flags", "consecutive", "expected_end"),
    [
        ([False, False, True], 1, WEEKS[3]),
        ([False, False, True], 2, None),
        ([False, True, True], 2, WEEKS[3]),
        ([True, True, False], 1, None),
    ],
)
def test_pending_drift_needs_consecutive_drifted_verdicts(flags, consecutive, expected_end):
    vs = [verdict(WEEKS[i], WEEKS[i + 1], f) for i, f in enumerate(flags)]
    pending = monitoring.pending_drift(vs, consecutive, timedelta(days=7), [])
    assert (pending or {}).get("end") == expected_end
    if pending:
        assert len(pending["verdicts"]) == consecutive


def test_handled_drift_is_not_answered_twice():
    vs = [verdict(WEEKS[0], WEEKS[1], True, handled="drift__x")]
    assert monitoring.pending_drift(vs, 1, timedelta(days=7), []) is None


def test_a_handled_verdict_does_not_start_a_new_streak():
    vs = [verdict(WEEKS[0], WEEKS[1], True, handled="drift__x"), verdict(WEEKS[1], WEEKS[2], True)]
    assert monitoring.pending_drift(vs, 2, timedelta(0), []) is None
    assert monitoring.pending_drift(vs, 1, timedelta(0), [])["end"] == WEEKS[2]


def test_a_new_champion_starts_a_new_streak():
    vs = [verdict(WEEKS[0], WEEKS[1], True, version=1), verdict(WEEKS[1], WEEKS[2], True, version=2)]
    assert monitoring.pending_drift(vs, 2, timedelta(0), []) is None
    vs.append(verdict(WEEKS[2], WEEKS[3], True, version=2))
    assert monitoring.pending_drift(vs, 2, timedelta(0), [])["verdicts"] == [
        "20260112T000000Z__20260119T000000Z",
        "20260119T000000Z__20260126T000000Z",
    ]


def test_cooldown_in_event_time():
    vs = [verdict(WEEKS[i], WEEKS[i + 1], True) for i in range(4)]
    triggers = [{"end": WEEKS[3], "verdicts": [], "retrain_run_id": "drift__a"}]
    # latest verdict ends one week after the last drift retrain: 7D cooldown allows it, 8D not
    assert monitoring.pending_drift(vs, 1, timedelta(days=7), triggers)["end"] == WEEKS[4]
    assert monitoring.pending_drift(vs, 1, timedelta(days=8), triggers) is None


def test_a_drift_retrain_learns_from_the_onset():
    """From the first drifted interval of the streak (not only the ``consecutive`` latest), at
    most ``window`` back; ``from_onset`` off: the whole window."""
    vs = [verdict(WEEKS[0], WEEKS[1], False)] + [verdict(WEEKS[i], WEEKS[i + 1], True) for i in (1, 2, 3)]
    pending = monitoring.pending_drift(vs, 2, timedelta(0), [], timedelta(days=28), from_onset=True)
    assert (pending["start"], pending["end"]) == (WEEKS[1], WEEKS[4])
    assert pending["verdicts"] == ["20260119T000000Z__20260126T000000Z", "20260126T000000Z__20260202T000000Z"]
    capped = monitoring.pending_drift(vs, 2, timedelta(0), [], timedelta(days=14), from_onset=True)
    assert capped["start"] == WEEKS[2]
    whole = monitoring.pending_drift(vs, 2, timedelta(0), [], timedelta(days=28), from_onset=False)
    assert whole["start"] == WEEKS[0]
    # drift answered by a retrain that was not promoted: the same champion, the same onset
    vs[1]["handled"] = "drift__earlier"
    assert monitoring.pending_drift(vs, 2, timedelta(0), [], timedelta(days=28), from_onset=True)["start"] == WEEKS[1]
    # a streak under another champion is not part of this drift's onset
    vs[1]["model_version"] = 0
    assert monitoring.pending_drift(vs, 2, timedelta(0), [], timedelta(days=28), from_onset=True)["start"] == WEEKS[2]


def test_a_drift_retrain_waits_for_enough_rows_since_the_onset():
    vs = [verdict(WEEKS[0], WEEKS[1], False), verdict(WEEKS[1], WEEKS[2], True, rows=120), verdict(WEEKS[2], WEEKS[3], True, rows=60)]
    assert monitoring.pending_drift(vs, 2, timedelta(0), [], timedelta(days=28), from_onset=True, min_rows=200) is None
    vs.append(verdict(WEEKS[3], WEEKS[4], True, rows=30))
    pending = monitoring.pending_drift(vs, 2, timedelta(0), [], timedelta(days=28), from_onset=True, min_rows=200)
    assert (pending["start"], pending["end"]) == (WEEKS[1], WEEKS[4])


def test_find_pending_drift_follows_the_config(settings):
    storage = Storage.from_settings(settings)
    from include.storage import Window

    for i, flag in enumerate([False, True, True]):
        storage.write_json(verdict(WEEKS[i], WEEKS[i + 1], flag), storage.verdict_path(Window.parse(WEEKS[i], WEEKS[i + 1])))

    def pending(**monitoring_keys):
        chosen = settings.monitoring.model_copy(update={"consecutive": 2, **monitoring_keys})
        return monitoring.find_pending_drift(settings.model_copy(update={"monitoring": chosen}))

    assert pending()["start"] == WEEKS[1]  # onset is the default
    whole = pending(drift_window="training")
    assert whole["start"] == (pd.Timestamp(WEEKS[3]) - settings.training.window).isoformat()


def test_mark_handled_is_idempotent(settings):
    storage = Storage.from_settings(settings)
    from include.storage import Window

    for i in range(2):
        w = Window.parse(WEEKS[i], WEEKS[i + 1])
        storage.write_json(verdict(WEEKS[i], WEEKS[i + 1], True), storage.verdict_path(w))
    pending = monitoring.find_pending_drift(
        settings.model_copy(update={"monitoring": settings.monitoring.model_copy(update={"consecutive": 2})})
    )
    assert pending["end"] == WEEKS[2]
    monitoring.mark_handled(settings, pending, "drift__1")
    monitoring.mark_handled(settings, pending, "drift__1")
    verdicts, triggers = monitoring.drift_state(settings)
    assert len(triggers) == 1 and all(v["handled"] == "drift__1" for v in verdicts)
    assert triggers[0]["start"] == pending["start"] == WEEKS[0]
    assert monitoring.find_pending_drift(settings) is None


def compare(reference, current, data, drift_share):
    """The verdict's columns on all rows, and the report monitor writes."""
    columns = drift.column_drift(reference, current, data)
    return columns, drift.drift_report(reference, current, data, columns, drift_share, rows=5000)


def test_evidently_sees_the_simulated_drift(stream, settings):
    before = stream[stream.timestamp < "2026-01-26"]
    same = stream[(stream.timestamp >= "2026-01-26") & (stream.timestamp < "2026-02-02")]
    after = stream[stream.timestamp >= "2026-02-02"]
    stable, html = compare(before, same, settings.data, 0.5)
    drifted, _ = compare(before, after, settings.data, 0.5)
    assert set(stable) == set(settings.data.features)
    assert drift.drift_decision(stable, 0.5)["drift"] is False
    decision = drift.drift_decision(drifted, 0.5)
    assert decision["drift"] is True and {"car_value", "debt_to_income_ratio"} <= set(decision["drifted"])
    assert "<html" in html.lower()


def test_labels_arriving_later_fill_the_target(tmp_path, settings, stream):
    labels_dir = tmp_path / "labels"
    labels_dir.mkdir()
    batch = stream.head(10).copy()
    batch[["id", "repaid"]].iloc[:6].to_csv(labels_dir / "l.csv", index=False)
    data = settings.data.model_copy(update={"labels": str(labels_dir)})
    unlabelled = batch.drop(columns=["repaid"])
    filled = labels.with_labels(unlabelled, data, "classification")
    assert filled.repaid.notna().sum() == 6 and list(filled.id) == list(batch.id)
    partly = batch.assign(repaid=[None] * 3 + list(batch.repaid.iloc[3:]))
    merged = labels.with_labels(partly, data, "classification")
    assert merged.repaid.tolist() == batch.repaid.tolist()


def test_charts_are_png():
    vs = [verdict(WEEKS[i], WEEKS[i + 1], i > 2, version=1 + (i > 3)) for i in range(5)]
    plain = charts.drift_chart(vs, 0.5, "roc_auc")
    assert plain[:8] == b"\x89PNG\r\n\x1a\n"
    vs[-1] = {**vs[-1], "shadow_version": 1, "shadow_metric": 0.6}
    with_shadow = charts.drift_chart(vs, 0.5, "roc_auc")
    assert with_shadow[:8] == b"\x89PNG\r\n\x1a\n" and with_shadow != plain
    folds = [{"fold": i, "valid_start": "2026-01-01", "valid_end": "2026-01-02", "score": 0.7 + i / 100} for i in range(3)]
    assert charts.fold_chart(folds, "roc_auc", "t")[:4] == b"\x89PNG"
    assert charts.drift_chart([], 0.5, "m") is None


def test_the_drift_chart_draws_prediction_and_target_drift_in_its_strip():
    import io

    from PIL import Image

    def red_in_strip(png: bytes) -> int:
        image = Image.open(io.BytesIO(png)).convert("RGB")
        width, height = image.size
        strip = image.crop((0, int(height * 0.72), width, height))  # the lower panel
        return sum(1 for r, g, b in strip.getdata() if r > 200 and g < 80 and b < 80)

    vs = [verdict(WEEKS[i], WEEKS[i + 1], False) for i in range(4)]
    calm = charts.drift_chart(vs, 0.5, "roc_auc")
    vs[2] = {**vs[2], "prediction_drift": {"drifted": True}, "target_drift": {"drifted": True}}
    moved = charts.drift_chart(vs, 0.5, "roc_auc")
    assert red_in_strip(calm) == 0 < red_in_strip(moved)


def test_frames_not_changed_by_with_labels(settings, stream, tmp_path):
    frame = stream.head(5).assign(repaid=[None, 1, None, 0, None])
    (tmp_path / "labels").mkdir()
    pd.DataFrame({"id": frame.id, "repaid": [1, 1, 0, 0, 1]}).to_csv(tmp_path / "labels" / "a.csv", index=False)
    copy = frame.copy()
    filled = labels.with_labels(frame, settings.data.model_copy(update={"labels": str(tmp_path / "labels")}), "classification")
    assert filled.repaid.tolist() == [1, 1, 0, 0, 1]
    pd.testing.assert_frame_equal(frame, copy)


def scored(i, live, shadow_metric, version=2, shadow=1, demoted=None, rows=200):
    return {
        **verdict(WEEKS[i], WEEKS[i + 1], False, version=version, live=live),
        "shadow_version": shadow,
        "shadow_metric": shadow_metric,
        "demoted": demoted,
        "labelled_rows": rows,
    }


def test_degradation_needs_the_champion_to_trail_its_shadow_in_every_interval():
    trailing = [scored(0, 0.55, 0.75), scored(1, 0.52, 0.76)]
    found = monitoring.degradation(trailing, champion=2, margin=0.02, intervals=2)
    assert found["champion"] == 2 and found["shadow"] == 1
    assert found["verdicts"] == ["20260105T000000Z__20260112T000000Z", "20260112T000000Z__20260119T000000Z"]
    assert found["gaps"] == pytest.approx([0.20, 0.24])
    assert "v2 trails shadow v1" in found["reason"] and "0.5200 vs 0.7600" in found["reason"]
    # one interval is not a streak of two; one good interval breaks it
    assert monitoring.degradation(trailing[:1], 2, 0.02, 2) is None
    assert monitoring.degradation([trailing[0], scored(1, 0.75, 0.76)], 2, 0.02, 2) is None
    # the gap must exceed the margin
    assert monitoring.degradation(trailing, 2, 0.25, 2) is None


@pytest.mark.parametrize(
    "latest",
    [
        scored(1, 0.5, 0.8, version=1, shadow=None),  # measured with another champion
        scored(1, 0.5, 0.8, shadow=3),  # another shadow
        scored(1, None, None),  # no labels yet
        scored(1, 0.5, None),  # the shadow could not be scored
        scored(1, 0.5, 0.8, demoted="manual__x"),  # already acted on
    ],
)
def test_degradation_only_on_comparable_unhandled_evidence(latest):
    assert monitoring.degradation([scored(0, 0.5, 0.8), latest], champion=2, margin=0.02, intervals=2) is None


def test_the_reference_can_be_the_last_part_of_the_champions_window(settings, stream):
    """A 28-day window straddling the shift (two weeks before, two after): the whole window as
    reference reads the next drifted week as drifted; its last 14 days (all after the shift) do not."""
    from datetime import datetime

    from include.registry import VersionInfo
    from include.storage import Window

    champion = VersionInfo(2, "run", "2026-01-19T00:00:00+00:00", "2026-02-16T00:00:00+00:00", "drift")
    assert monitoring.reference_window(champion, None) == Window.parse("2026-01-19", "2026-02-16")
    assert monitoring.reference_window(champion, timedelta(days=14)) == Window.parse("2026-02-02", "2026-02-16")
    assert monitoring.reference_window(champion, timedelta(days=60)) == Window.parse("2026-01-19", "2026-02-16")

    storage = Storage.from_settings(settings)
    storage.curated().replace(stream, Window(datetime(2026, 1, 5), datetime(2026, 2, 16)), Commit("publish"))
    current = stream[stream.timestamp >= "2026-02-09"]
    for length, drifted in ((None, True), (timedelta(days=14), False)):
        config = settings.model_copy(update={"monitoring": settings.monitoring.model_copy(update={"reference": length})})
        reference = monitoring.reference_frame(config, storage, champion)
        start = "2026-02-02" if length else "2026-01-19"
        assert reference.timestamp.min() >= pd.Timestamp(start, tz="UTC") and reference.timestamp.max() < pd.Timestamp(
            "2026-02-16", tz="UTC"
        )
        columns, _ = compare(reference, current, settings.data, 0.5)
        assert drift.drift_decision(columns, 0.5)["drift"] is drifted, length


def test_degradation_passes_over_intervals_whose_labels_have_not_arrived():
    vs = [scored(0, 0.55, 0.75), scored(1, 0.52, 0.76), scored(2, None, None, rows=0)]
    found = monitoring.degradation(vs, champion=2, margin=0.02, intervals=2)
    assert found is not None and found["verdicts"][-1].startswith("20260112")


def test_degradation_needs_enough_labelled_rows_and_this_champions_reign():
    few = [scored(0, 0.55, 0.75, rows=10), scored(1, 0.52, 0.76, rows=10)]
    assert monitoring.degradation(few, 2, 0.02, 2, min_rows=50) is None
    assert monitoring.degradation(few, 2, 0.02, 2, min_rows=10) is not None
    # v2 champion, then v1, then v2 again: the first reign's verdicts do not count for the second
    reigns = [scored(0, 0.5, 0.8), scored(1, 0.7, None, version=1, shadow=None), scored(2, 0.5, 0.8)]
    assert monitoring.degradation(reigns, 2, 0.02, 2) is None


# -- monitoring that degrades gracefully: columns Evidently cannot compare ----------------------


def small_frames(rows=150, seed=0):
    """A reference and a current frame from the same world: numeric a, b and categorical c, d."""
    rng = np.random.default_rng(seed)

    def frame():
        return pd.DataFrame(
            {
                "a": rng.normal(10, 2, rows),
                "b": rng.normal(0, 1, rows),
                "c": rng.choice(["x", "y", "z"], rows),
                "d": rng.choice(["p", "q"], rows),
            }
        )

    return frame(), frame()


DATA = SimpleNamespace(numeric=["a", "b"], categorical=["c", "d"], features=["a", "b", "c", "d"])


def test_an_all_null_current_column_is_reported_as_drifted_not_a_crash():
    """Before: Evidently raised "An empty column 'a' was provided for drift calculation"."""
    reference, current = small_frames()
    current["a"] = np.nan
    current["c"] = None
    columns, html = compare(reference, current, DATA, 0.5)
    for col in ("a", "c"):
        assert columns[col]["status"] == "all_null" and columns[col]["drifted"] is True and columns[col]["score"] is None
        assert f"0 of {len(current)} current rows" in columns[col]["note"]
    assert columns["b"]["status"] == "ok" and columns["b"]["drifted"] is False and columns["b"]["method"]
    decision = drift.drift_decision(columns, 0.5)
    assert decision["drifted"] == ["a", "c"] and decision["drift_share"] == 0.5 and decision["drift"] is True
    assert decision["column_issues"] == {"a": "all_null", "c": "all_null"}
    assert "<html" in html.lower()


@pytest.mark.parametrize(
    ("edit", "column", "status", "drifted"),
    [
        (lambda ref, cur: ref.__setitem__("b", np.nan), "b", "all_null_in_reference", True),
        (lambda ref, cur: (ref.__setitem__("b", np.nan), cur.__setitem__("b", np.nan)), "b", "empty", False),
        (lambda ref, cur: cur.drop(columns=["d"], inplace=True), "d", "missing_in_current", True),
        (lambda ref, cur: ref.drop(columns=["d"], inplace=True), "d", "missing_in_reference", None),
        (lambda ref, cur: cur.__setitem__("a", 7.0), "a", "constant", True),
        (lambda ref, cur: (ref.__setitem__("a", 7.0), cur.__setitem__("a", 7.0)), "a", "constant", False),
        (lambda ref, cur: cur.__setitem__("c", "x"), "c", "constant", True),
    ],
)
def test_columns_evidently_cannot_compare_have_a_status_and_a_defined_drift(edit, column, status, drifted):
    reference, current = small_frames()
    edit(reference, current)
    columns, _ = compare(reference, current, DATA, 0.5)
    assert set(columns) == set(DATA.features)
    assert columns[column]["status"] == status and columns[column]["drifted"] is drifted
    others = {c: r for c, r in columns.items() if c != column}
    assert all(r["status"] == "ok" and r["drifted"] is False for r in others.values())
    decision = drift.drift_decision(columns, 0.5)
    assert decision["column_issues"] == {column: status}
    judged = 3 if drifted is None else 4  # a column that cannot be judged is left out of the share
    assert decision["drift_share"] == pytest.approx((1 if drifted else 0) / judged)


def test_no_comparable_column_gives_a_verdict_and_a_page_without_evidently():
    reference, current = small_frames()
    current[DATA.features] = np.nan
    columns, html = compare(reference, current, DATA, 0.5)
    assert {r["status"] for r in columns.values()} == {"all_null"}
    assert drift.drift_decision(columns, 0.5)["drift"] is True
    assert "No feature column could be compared" in html and "all_null" in html
    reference = reference.drop(columns=DATA.features)
    columns, _ = compare(reference, current, DATA, 0.5)
    decision = drift.drift_decision(columns, 0.5)
    assert decision["drift"] is False and decision["drift_share"] == 0.0 and len(decision["column_issues"]) == 4


def test_a_column_without_a_score_is_left_out_of_the_share():
    cols = {"a": {"drifted": True, "status": "ok"}, "b": {"drifted": None, "status": "no_score"}}
    assert drift.drift_decision(cols, 1.0) == {
        "drift": True,
        "drift_share": 1.0,
        "drifted_columns": 1,
        "drifted": ["a"],
        "column_issues": {"b": "no_score"},
    }


def nullable(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    out = frame.copy()
    for col in numeric:
        whole = out[col].dropna().mod(1).eq(0).all()
        out[col] = out[col].astype("Int64" if whole else "Float64")
    for col in categorical:
        out[col] = out[col].astype("string")
    return out


def test_nullable_dtypes_go_through_the_drift_check():
    """Before: Evidently 0.7.23 raised AttributeError on Float64/Int64 columns without a missing
    value, and TypeError on booleans."""
    reference, current = small_frames()
    reference["b"], current["b"] = reference.b.round(), current.b.round() + 3
    plain, _ = compare(reference, current, DATA, 0.5)
    columns, _ = compare(nullable(reference, ["a", "b"], DATA.categorical), nullable(current, ["a", "b"], DATA.categorical), DATA, 0.5)
    assert {c: (r["status"], r["drifted"]) for c, r in columns.items()} == {c: (r["status"], r["drifted"]) for c, r in plain.items()}
    assert columns["b"]["drifted"] is True and columns["b"]["score"] == pytest.approx(plain["b"]["score"])
    flags = SimpleNamespace(numeric=["a", "f"], categorical=["c"], features=["a", "f", "c"])
    rng = np.random.default_rng(1)
    reference["f"] = pd.array(rng.random(len(reference)) < 0.5, dtype="boolean")
    current["f"] = pd.array(rng.random(len(current)) < 0.5, dtype="boolean")
    current.loc[:3, "f"] = pd.NA
    columns, _ = compare(reference, current, flags, 0.5)
    assert columns["f"]["status"] == "ok" and columns["f"]["drifted"] is False


def test_nullable_dtypes_go_through_the_live_metric(settings, stream):
    """Before: scikit-learn refused pd.NA in a Float64 feature ("uses pandas.NA to represent null
    values") and in a string column's encoder."""
    from include.training import build_pipeline

    data = settings.data
    train, rows = stream.iloc[:1500], stream.iloc[1500:2100].reset_index(drop=True)
    model = build_pipeline("classification", data.numeric, data.categorical, {"max_iter": 20}).fit(train[data.features], train[data.target])
    rows.loc[:4, "car_value"] = np.nan
    rows.loc[5:9, "region"] = None
    expected = monitoring.live_metric(model, rows, settings)
    odd = nullable(rows, data.numeric, data.categorical)
    odd[data.target] = odd[data.target].astype("Int64")
    assert odd.car_value.isna().sum() == 5 and odd.region.isna().sum() == 5
    assert monitoring.live_metric(model, odd, settings) == pytest.approx(expected)
    odd[data.target] = odd[data.target].astype("boolean")
    before = odd.copy()
    assert monitoring.live_metric(model, odd, settings) == pytest.approx(expected)
    pd.testing.assert_frame_equal(odd, before)  # the input is not changed
    plain = drift.plain_features(odd, data.numeric, data.categorical)
    assert (plain[data.numeric].dtypes == "float64").all() and (plain[data.categorical].dtypes == "object").all()


def test_a_label_that_is_no_class_stops_the_live_metric(settings, stream):
    from include.labels import LabelsError
    from include.training import build_pipeline

    data = settings.data
    model = build_pipeline("classification", data.numeric, data.categorical, {"max_iter": 5}).fit(
        stream[data.features], stream[data.target]
    )
    rows = stream.iloc[:20].astype({data.target: object})
    rows.loc[3, data.target] = "yes"
    with pytest.raises(LabelsError, match=r"the interval's labelled rows: column 'repaid': rule label_is_class: 1 of 20"):
        monitoring.live_metric(model, rows, settings)


def test_the_drift_chart_draws_the_business_value_in_a_panel_of_its_own():
    import io

    from PIL import Image

    vs = [verdict(WEEKS[i], WEEKS[i + 1], False) for i in range(4)]
    plain = Image.open(io.BytesIO(charts.drift_chart(vs, 0.5, "roc_auc")))
    for i, value in enumerate([50.0, 48.0, 20.0, 47.0]):
        vs[i] = {**vs[i], "business": {"metric": "expected_value", "value": value, "reference": 49.0, "fell": value < 40, "rows": 100}}
    drawn = Image.open(io.BytesIO(charts.drift_chart(vs, 0.5, "roc_auc"))).convert("RGB")
    assert drawn.size[1] > plain.size[1]  # a third panel
    greens = sum(1 for r, g, b in drawn.getdata() if g > 140 and r < 80 and b < 80)
    reds = sum(
        1
        for r, g, b in drawn.crop((0, int(drawn.size[1] * 0.55), drawn.size[0], int(drawn.size[1] * 0.8))).getdata()
        if r > 200 and g < 80 and b < 80
    )
    assert greens > 0 and reds > 0  # the value's line, and the interval that fell


def test_the_business_record_of_a_verdict_compares_with_the_champions_own_value(settings):
    from include.config import BusinessSettings
    from include.monitoring import business_verdict

    chosen = settings.model_copy(update={"business": BusinessSettings(metric="approval_rate", max_drop=0.1)})
    reference = pd.DataFrame({"prediction": [0.9, 0.8, 0.2, np.nan], "target": [1, 1, 0, 1]})  # 2 of 3 scored approved
    worth = {"metric": "approval_rate", "value": 0.5, "rows": 10, "classes": [0, 1]}
    record = business_verdict(chosen, worth, reference)
    assert record == {"metric": "approval_rate", "value": 0.5, "rows": 10, "reference": pytest.approx(2 / 3), "max_drop": 0.1, "fell": True}
    assert business_verdict(chosen, {**worth, "value": 0.6}, reference)["fell"] is False
    assert business_verdict(chosen, worth, None)["fell"] is None and business_verdict(settings, worth, reference) is None
