"""The loop end to end, as `make demo` runs it: the real scheduler under `airflow standalone`, a
real MLflow server, asset-triggered monitor runs, the DriftSensor starting a retrain."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]


def test_drift_started_retrain_promoted_a_new_champion(demo):
    from mlflow import MlflowClient

    client = MlflowClient(demo.svc.mlflow_url)
    name = demo.settings.name
    champion = client.get_model_version_by_alias(name, "champion")
    assert champion.version == "2"
    assert champion.tags["driftloop.reason"] == "drift"
    run = client.get_run(champion.run_id)
    assert run.data.tags["driftloop.airflow_run_id"] == "drift__20260302T000000Z"
    assert run.data.metrics["holdout_roc_auc"] > run.data.metrics["champion_holdout_roc_auc"]
    assert client.get_model_version(name, "1").tags["driftloop.reason"] == "initial"
    # the version's description alone says why it replaced v1: its model card
    card = client.get_model_version(name, "2").description
    assert card.startswith(f"# {name} v2\n\n**Champion.** Promoted, replacing v1: challenger roc_auc")
    for fact in ("| why retrained | drift", "| champion v1 |", "- passed: baseline: beats the baseline", "| fold | trained up to |"):
        assert fact in card, fact


def test_the_retrain_was_started_by_the_drift_sensor(demo):
    runs = demo.airflow.runs("retrain")
    drift_runs = [r for r in runs if r["dag_run_id"].startswith("drift__")]
    assert [r["dag_run_id"] for r in drift_runs] == ["drift__20260302T000000Z"]
    assert drift_runs[0]["conf"]["reason"] == "drift" and drift_runs[0]["state"] == "success"
    watch = [r for r in demo.airflow.runs("drift_watch") if r["state"] == "success"]
    assert watch, "a drift_watch run should have succeeded"


def test_monitor_ran_on_asset_events_and_recorded_verdicts(demo):
    runs = demo.airflow.runs("monitor")
    assert runs and all(r["run_type"] == "asset_triggered" for r in runs)
    rows = {r.interval: r for r in demo.table}
    assert rows["2026-02-09..2026-02-16"].drift_share < 0.5 and rows["2026-02-09..2026-02-16"].champion == 1
    assert rows["2026-02-23..2026-03-02"].drift_share >= 0.5
    # after the drift retrain the live metric recovers under the new champion
    assert rows["2026-03-02..2026-03-09"].champion == 2
    # v2 learned the last two (drifted) weeks: measured against its own window, week 9 is not drifted
    assert rows["2026-03-02..2026-03-09"].drift_share < 0.5
    assert rows["2026-03-02..2026-03-09"].live > rows["2026-02-23..2026-03-02"].live + 0.1


def test_corrupted_batch_was_quarantined(demo):
    from include.storage import Storage

    storage = Storage.from_settings(demo.settings)
    entry = Path(storage.path("quarantine", "0001__20260309T000000Z__20260316T000000Z"))
    report = (entry / "report.md").read_text()
    assert '"state": "open"' in (entry / "entry.json").read_text()
    assert "| car_value | expect_column_values_to_be_between | profile | FAILED |" in report
    assert not storage.read_curated(__import__("include.storage", fromlist=["Window"]).Window.parse("2026-03-09", "2026-03-16")).shape[0]
    assert demo.table[-1].gate == "QUARANTINED"


def test_the_old_champion_scored_as_a_shadow_and_stayed_behind(demo):
    rows = {r.interval: r for r in demo.table}
    week9 = rows["2026-03-02..2026-03-09"]
    shadow_version, shadow_metric = week9.shadow.split()
    assert shadow_version == "v1" and float(shadow_metric) < week9.live - 0.1
    assert all(not r.shadow for r in demo.table if r.champion == 1)
    # every guard that ran (not the one of a monitor run before the first champion) kept the champion
    guards = [demo.airflow.xcom("monitor", r["dag_run_id"], "guard") for r in demo.airflow.runs("monitor")]
    guards = [g for g in guards if g is not None]
    assert len(guards) >= 5 and all(g["rolled_back"] is False for g in guards)


def test_the_loop_left_its_alerts_under_storage(demo):
    import json

    from include.storage import Storage

    folder = Path(Storage.from_settings(demo.settings).path("alerts"))
    kept = [json.loads(p.read_text())["driftloop"] for p in sorted(folder.glob("*.json"))]
    kinds = sorted((a["kind"], a["dag_id"], a["task_id"]) for a in kept)
    assert kinds == [
        ("drift", "drift_watch", "mark_handled"),
        ("failure", "ingest", "gate"),
        ("promotion", "retrain", "promote"),
        ("promotion", "retrain", "promote"),
    ]
    assert any("car_value" in a["text"] for a in kept if a["kind"] == "failure")
