import numpy as np
import pandas as pd
import pytest

from include import training


def test_time_folds_train_strictly_before_validation(stream):
    ts = stream.timestamp.sample(frac=1.0, random_state=1)  # shuffled input order
    folds = training.time_folds(ts.reset_index(drop=True), 4)
    assert len(folds) == 4
    shuffled = ts.reset_index(drop=True)
    for f in folds:
        assert shuffled.iloc[f.train_index].max() < shuffled.iloc[f.valid_index].min()
    # expanding windows, validation blocks in time order
    assert [len(f.train_index) for f in folds] == sorted(len(f.train_index) for f in folds)
    assert all(a.valid_end < b.valid_start for a, b in zip(folds, folds[1:], strict=False))


def test_time_folds_move_cut_past_equal_timestamps():
    ts = pd.Series(pd.to_datetime([f"2026-01-0{d}" for d in (1, 2, 3, 4) for _ in range(3)], utc=True))
    folds = training.time_folds(ts, 2)
    for f in folds:
        assert ts.iloc[f.train_index].max() < ts.iloc[f.valid_index].min()
    assert [len(f.valid_index) for f in folds] == [2, 3]


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", None])
def test_time_folds_keep_the_zone_and_order_by_the_instant(zone):
    # hourly across the night the clocks went back (02:00-03:00 happens twice in Paris), shuffled:
    # the order is the instants', the fold bounds are Timestamps in the column's own zone
    instants = pd.date_range("2026-10-24", "2026-10-27", freq="h", tz="UTC")
    stamps = pd.Series(instants.tz_convert(zone) if zone else instants.tz_localize(None)).sample(frac=1.0, random_state=3)
    stamps = stamps.reset_index(drop=True)
    folds = training.time_folds(stamps, 3)
    for f in folds:
        assert stamps.iloc[f.train_index].max() < stamps.iloc[f.valid_index].min()
        assert f.valid_start == stamps.iloc[f.valid_index].min() and f.train_end == stamps.iloc[f.train_index].max()
        assert f.valid_end == stamps.iloc[f.valid_index].max() and f.valid_start.tz == stamps.dt.tz
    assert sum(len(f.valid_index) for f in folds) + len(folds[0].train_index) == len(stamps)


def test_a_fold_of_time_sorted_rows_is_a_slice_sharing_the_frames_memory():
    frame = pd.DataFrame({"x": np.arange(10.0), "c": list("abcdefghij")})
    run, scattered = np.arange(3, 8), np.array([1, 4, 5])
    assert training.rows(frame, run).equals(frame.iloc[run]) and np.shares_memory(
        training.rows(frame, run)["x"].to_numpy(), frame["x"].to_numpy()
    )
    assert training.rows(frame, scattered).equals(frame.iloc[scattered])
    assert training.rows(frame, np.array([2, 3, 5])).equals(frame.iloc[[2, 3, 5]])  # first and last a run apart, a gap inside
    assert training.rows(frame, np.array([], dtype=np.int64)).empty


def test_too_few_rows():
    with pytest.raises(ValueError, match="too few"):
        training.time_folds(pd.Series(pd.date_range("2026-01-01", periods=5, tz="UTC")), 4)


def test_cross_validate_scores_each_fold(stream, settings):
    frame = stream[stream.timestamp < "2026-02-02"].reset_index(drop=True)
    cv, last = training.cross_validate(frame, settings)
    assert len(cv.scores) == settings.training.folds
    assert all(0.6 < s < 1.0 for s in cv.scores)  # the stable world is learnable
    summary = cv.summary()
    assert summary[-1]["valid_end"] == frame.timestamp.max().isoformat()
    # the last-fold model never saw its validation rows: its score matches the fold's
    valid = frame.iloc[cv.folds[-1].valid_index]
    assert training.score(last, valid, settings.data.features, "repaid", "roc_auc") == pytest.approx(cv.scores[-1])


def test_cross_validate_does_not_change_its_input(stream, settings):
    frame = stream[stream.timestamp < "2026-01-19"].reset_index(drop=True)
    copy = frame.copy()
    training.cross_validate(frame, settings)
    pd.testing.assert_frame_equal(frame, copy)


def test_pipeline_handles_unseen_categories_and_missing_values(stream, settings):
    frame = stream[stream.timestamp < "2026-01-19"]
    model = training.fit(frame, settings)
    odd = frame.head(3).copy()
    odd["region"] = "atlantis"
    odd.loc[odd.index[0], "car_value"] = np.nan
    p = training.predict(model, odd, settings.data.features, "classification")
    assert p.shape == (3,) and np.all((p >= 0) & (p <= 1))


def test_score_refuses_single_class(stream, settings):
    frame = stream[stream.timestamp < "2026-01-12"]
    model = training.fit(frame, settings)
    with pytest.raises(ValueError, match="needs both classes"):
        training.score(model, frame[frame.repaid == 1], settings.data.features, "repaid", "roc_auc")


def test_drift_hurts_the_old_model(stream, settings):
    """The simulator's promise: the drift is strong enough to hurt a model trained before it."""
    before = stream[stream.timestamp < "2026-02-02"]
    after = stream[stream.timestamp >= "2026-02-02"]
    model = training.fit(before, settings)
    old = training.score(model, before.tail(1000), settings.data.features, "repaid", "roc_auc")
    new = training.score(model, after, settings.data.features, "repaid", "roc_auc")
    assert new < old - 0.1


def test_regression_config_end_to_end(stream, settings):
    """A regression target with an error scorer: CV, scores (negative, greater is better), chart."""
    from include import charts

    reg = settings.model_copy(
        update={"model": settings.model.model_copy(update={"task": "regression", "metric": "neg_root_mean_squared_error"})}
    )
    frame = stream[stream.timestamp < "2026-01-26"].assign(repaid=lambda f: f.car_value * 0.05 + f.age).reset_index(drop=True)
    cv, last = training.cross_validate(frame, reg)
    assert all(s < 0 for s in cv.scores)
    png = charts.fold_chart(cv.summary(), "neg_root_mean_squared_error", "regression")
    assert png[:4] == b"\x89PNG"


CLASSIFIER_SCORERS = ["roc_auc", "neg_log_loss", "accuracy", "f1", "average_precision", "neg_brier_score", "balanced_accuracy"]


@pytest.mark.parametrize(
    ("task", "metric"),
    [*(("classification", m) for m in CLASSIFIER_SCORERS), *(("regression", m) for m in ["r2", "neg_root_mean_squared_error"])],
)
def test_a_score_from_predictions_already_made_is_the_models_own(stream, task, metric):
    """Monitoring and CV score rows they have just predicted: the scorer reads those predictions
    and gives exactly what it gives when it runs the model itself."""
    frame = stream[stream.timestamp < "2026-01-19"].reset_index(drop=True)
    features = ["car_value", "age", "credit_score", "region"]
    if task == "regression":
        frame = frame.assign(repaid=frame.car_value * 0.05 + frame.age)
    model = training.build_pipeline(task, features[:3], features[3:], {"max_iter": 20}).fit(
        frame[features].head(1500), frame.repaid.head(1500)
    )
    rows = frame.iloc[1500:]
    made = training.predict(model, rows, features, task)
    assert training.score(model, rows, features, "repaid", metric, made) == training.score(model, rows, features, "repaid", metric)
    # they are read, not recomputed: other numbers give another score
    assert training.score(model, rows, features, "repaid", metric, made[::-1].copy()) != training.score(
        model, rows, features, "repaid", metric
    )
    with pytest.raises(ValueError, match="predictions for"):
        training.score(model, rows, features, "repaid", metric, made[:-1])


def test_cross_validation_keeps_the_last_folds_scores_for_monitoring(stream, settings):
    frame = stream[stream.timestamp < "2026-01-26"].reset_index(drop=True)
    cv, last = training.cross_validate(frame, settings)
    rows = cv.folds[-1].valid_index
    assert np.isnan(np.delete(cv.oot, rows)).all()
    np.testing.assert_array_equal(cv.oot[rows], training.predict(last, frame.iloc[rows], settings.data.features, "classification"))


def test_folds_in_parallel_give_the_serial_result(stream, settings):
    """``training.n_jobs: 2`` fits two folds at a time (largest first) and returns what one at a
    time does: the same scores in fold order, the same last-fold model and out-of-time scores."""
    frame = stream[stream.timestamp < "2026-02-02"].reset_index(drop=True)
    serial, serial_last = training.cross_validate(frame, settings)
    two = settings.model_copy(update={"training": settings.training.model_copy(update={"n_jobs": 2})})
    parallel, parallel_last = training.cross_validate(frame, two)
    assert [f.number for f in parallel.folds] == list(range(settings.training.folds))
    assert parallel.scores == serial.scores
    np.testing.assert_array_equal(parallel.oot, serial.oot)
    rows = frame.iloc[parallel.folds[-1].valid_index]
    np.testing.assert_array_equal(
        training.predict(parallel_last, rows, settings.data.features, "classification"),
        training.predict(serial_last, rows, settings.data.features, "classification"),
    )
    # the fit on every row, run in the folds' pool, is the fit run alone
    both, both_last, model = training.cross_validate_and_fit(frame, two)
    assert both.scores == serial.scores
    np.testing.assert_array_equal(both.oot, serial.oot)
    np.testing.assert_array_equal(
        training.predict(model, frame, settings.data.features, "classification"),
        training.predict(training.fit(frame, settings), frame, settings.data.features, "classification"),
    )


def test_each_fold_scores_the_dummy_baseline_and_the_secondary_metrics_on_the_same_rows(stream, settings):
    frame = stream[stream.timestamp < "2026-02-02"].reset_index(drop=True)
    cv, last = training.cross_validate(frame, settings)
    for fold in cv.folds:
        assert fold.baseline == pytest.approx(0.5)  # a prior ranks every row alike: ROC AUC 0.5
        assert set(fold.metrics) == {"roc_auc", "log_loss", "f1", "brier"} and fold.metrics["roc_auc"] == pytest.approx(fold.score)
        assert 0 < fold.metrics["brier"] < 0.25 and fold.metrics["log_loss"] > 0  # natural signs: lower is better
    assert cv.baseline_mean == pytest.approx(0.5) and cv.mean > cv.baseline_mean
    # the last fold's baseline is the positive rate of its training rows, and scores the comparison rows as the dummy does
    train = frame.iloc[cv.folds[-1].train_index]
    assert cv.baseline == {"strategy": "prior", "value": pytest.approx(train.repaid.mean())}
    valid = frame.iloc[cv.folds[-1].valid_index]
    dummy = training.baseline_model("classification").fit(train[settings.data.features], train.repaid)
    for metric in ("roc_auc", "neg_log_loss", "neg_brier_score"):
        recorded = training.baseline_score(last, valid, settings.data.features, "repaid", metric, cv.baseline)
        assert recorded == pytest.approx(training.score(dummy, valid, settings.data.features, "repaid", metric))
    # every validation row has the out-of-time score of the fold that validated it; the first training block none
    assert np.isnan(cv.oot_all).sum() == len(cv.folds[0].train_index)
    np.testing.assert_array_equal(cv.oot_all[cv.folds[-1].valid_index], cv.oot[cv.folds[-1].valid_index])


def test_regression_folds_report_errors_with_their_natural_sign_against_the_mean(stream, settings):
    reg = settings.model_copy(update={"model": settings.model.model_copy(update={"task": "regression", "metric": "r2"})})
    frame = stream[stream.timestamp < "2026-01-26"].assign(repaid=lambda f: f.car_value * 0.05 + f.age).reset_index(drop=True)
    cv, _ = training.cross_validate(frame, reg)
    assert cv.baseline["strategy"] == "mean" and all(f.baseline <= 0.0 for f in cv.folds)  # the mean explains nothing
    assert all(f.metrics["rmse"] > 0 and f.metrics["mae"] > 0 and f.metrics["r2"] == pytest.approx(f.score) for f in cv.folds)
    from include.tracking import fold_metrics

    logged = fold_metrics(cv, "r2")
    assert set(logged) == {"cv_r2", "baseline_cv_r2", "cv_rmse", "cv_mae"}  # r2 is the primary metric: logged once
    assert logged["cv_rmse"]["folds"] == {f.number: f.metrics["rmse"] for f in cv.folds}
