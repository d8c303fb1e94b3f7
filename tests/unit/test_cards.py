"""The model card's Markdown: every fact an auditor needs, and a description MLflow can hold."""

import pytest

from include import cards


def _facts(folds: int = 4, **more) -> dict:
    fold_rows = [
        {
            "fold": i,
            "train_rows": 1000 * (i + 1),
            "valid_rows": 1000,
            "train_end": f"2026-01-{10 + i:02d}T23:59:00+00:00",
            "valid_start": f"2026-01-{11 + i:02d}T00:00:00+00:00",
            "valid_end": f"2026-01-{11 + i:02d}T23:00:00+00:00",
            "score": 0.8 + i / 100,
            "baseline": 0.5,
            "metrics": {"roc_auc": 0.8 + i / 100, "log_loss": 0.45, "f1": 0.7, "brier": 0.15},
        }
        for i in range(folds)
    ]
    return {
        "name": "car_loans",
        "version": 3,
        "run_id": "abc123",
        "run_url": "http://mlflow/#/experiments/1/runs/abc123",
        "task": "classification",
        "metric": "roc_auc",
        "estimator": "hist_gradient_boosting",
        "params": {"max_iter": "150"},
        "window_start": "2026-01-05T00:00:00+00:00",
        "window_end": "2026-02-02T00:00:00+00:00",
        "rows": 4200,
        "reason": "drift",
        "trigger": "drifted intervals 2026-01-26_2026-02-02 (drift share 0.62)",
        "airflow_run_id": "drift__2026-02-02",
        "data_digest": "d1g35t",
        "config_digest": "c0nf1g",
        "code_version": "0123abcd",
        "gate": {
            "rows": 4200,
            "checks": 45,
            "learned_from": {"start": "2025-12-08T00:00:00+00:00", "end": "2026-01-05T00:00:00+00:00"},
            "warnings": [],
        },
        "folds": fold_rows,
        "cv_mean": 0.815,
        "baseline": {"strategy": "prior", "value": 0.62},
        "baseline_cv_mean": 0.5,
        "decision": None,
        **more,
    }


COMPARISON = {
    "rows": 900,
    "rows_start": "2026-01-27T00:00:00+00:00",
    "rows_end": "2026-02-01T23:00:00+00:00",
    "challenger_score": 0.81,
    "champion_score": 0.74,
    "champion_version": 2,
    "baseline_score": 0.5,
    "checks": [
        {"check": "baseline", "passed": True, "detail": "beats the baseline: challenger roc_auc 0.8100 against the baseline's 0.5000"},
        {"check": "champion", "passed": True, "detail": "challenger roc_auc 0.8100 beats champion 0.7400 by +0.0700 (> 0.0)"},
    ],
    "better": True,
    "reason": "challenger roc_auc 0.8100 beats champion 0.7400 by +0.0700 (> 0.0)",
}


def test_a_promoted_versions_card_answers_why_it_is_champion():
    decision = {"state": "promoted", "reason": COMPARISON["reason"], "champion_before": 2, "refused_by": []}
    card = cards.render(_facts(comparison=COMPARISON, decision=decision))
    assert card.startswith("# car_loans v3\n\n**Champion.** Promoted, replacing v2: challenger roc_auc 0.8100 beats champion 0.7400")
    for fact in (
        "2026-01-05 00:00 .. 2026-02-02 00:00 (end excluded), 4,200 labelled rows",
        "| why retrained | drift: drifted intervals 2026-01-26_2026-02-02 (drift share 0.62) |",
        "classification: hist_gradient_boosting (max_iter=150)",
        "`d1g35t`",
        "`c0nf1g`",
        "`0123abcd`",
        "passed 45 checks on 4,200 rows against the config and the champion's learned tolerances (window 2025-12-08 .. 2026-01-05)",
        "[abc123](http://mlflow/#/experiments/1/runs/abc123) (Airflow run `drift__2026-02-02`)",
        "| fold | trained up to | validated on | rows (train / valid) | roc_auc | baseline | log_loss | f1 | brier |",
        "| 3 | 2026-01-13 23:59 | 2026-01-14 .. 2026-01-14 | 4,000 / 1,000 | 0.8300 | 0.5000 | 0.4500 | 0.7000 | 0.1500 |",
        "900 out-of-time rows, 2026-01-27 00:00 to 2026-02-01 23:00",
        "after champion v2's training window",
        "| challenger v3 (its last-fold model) | 0.8100 |",
        "| champion v2 | 0.7400 |",
        "| baseline (prior: always 0.6200) | 0.5000 |",
        "- passed: baseline: beats the baseline",
        "- fairness: not configured",
        "- business: not configured",
    ):
        assert fact in card, fact


@pytest.mark.parametrize(
    ("decision", "comparison", "headline"),
    [
        (None, None, "**Trained and registered as `@challenger`**; not yet compared"),
        (None, COMPARISON, "**Evaluated, not yet decided**: better"),
        (
            {"state": "kept", "reason": "does not beat champion", "champion_before": 2},
            COMPARISON,
            "**Not promoted**; the champion stays v2",
        ),
        (
            {"state": "refused", "reason": "does not beat the baseline", "champion_before": None, "refused_by": ["baseline"]},
            COMPARISON,
            "**Refused** by the baseline check; the champion stays none: does not beat the baseline.",
        ),
    ],
)
def test_the_headline_says_where_the_version_stands(decision, comparison, headline):
    card = cards.render(_facts(comparison=comparison, decision=decision))
    assert card.split("\n")[2].startswith(headline)


def test_the_description_fits_mlflows_limit_and_points_at_the_whole_card():
    small = _facts(comparison=COMPARISON)
    assert cards.description(small) == cards.render(small)
    many = _facts(folds=50, comparison=COMPARISON)
    assert len(cards.render(many)) > cards.DESCRIPTION_LIMIT
    text = cards.description(many)
    assert len(text) <= cards.DESCRIPTION_LIMIT and text.startswith("# car_loans v3")
    assert "model_card.md" in text and "| log_loss |" not in text


def test_a_drift_retrains_trigger_names_the_intervals_it_answers(settings, monkeypatch):
    from include.storage import Storage
    from include.tracking import retrain_trigger

    storage = Storage.from_settings(settings)
    keys = ["20260216T000000Z__20260223T000000Z", "20260223T000000Z__20260302T000000Z"]
    for key, share in zip(keys, (0.62, 0.75), strict=True):
        start, end = key.split("__")
        storage.write_json(
            {"start": start, "end": end, "drift_share": share, "drift": True, "model_version": 1}, storage.path("verdicts", f"{key}.json")
        )
    storage.write_json(
        {"triggers": [{"end": "2026-03-02T00:00:00+00:00", "verdicts": keys, "retrain_run_id": "drift__x"}]},
        storage.path("drift_watch", "triggers.json"),
    )
    said = retrain_trigger(settings, "drift__x")
    assert said == "drifted intervals 2026-02-16 .. 2026-02-23 (drift share 0.62), 2026-02-23 .. 2026-03-02 (drift share 0.75)"
    assert retrain_trigger(settings, "manual__y") is None

    # with their monitoring runs in an MLflow that has a UI: each interval links to its Evidently report
    from include import registry

    monkeypatch.setattr(registry, "artifact_url", lambda run_id, path: f"http://mlflow/#/runs/{run_id}/artifacts/{path}")
    for key, run_id in zip(keys, ("r1", "r2"), strict=True):
        path = storage.path("verdicts", f"{key}.json")
        storage.write_json({**storage.read_json(path), "mlflow_run_id": run_id}, path)
    assert retrain_trigger(settings, "drift__x") == (
        "drifted intervals [2026-02-16 .. 2026-02-23](http://mlflow/#/runs/r1/artifacts/evidently/drift.html) (drift share 0.62), "
        "[2026-02-23 .. 2026-03-02](http://mlflow/#/runs/r2/artifacts/evidently/drift.html) (drift share 0.75)"
    )
