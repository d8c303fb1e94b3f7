"""The backtest against the pipeline it replays: the same simulated weeks go once through the DAGs
(``dag.test()``, the real MLflow server) and once through ``driftloop backtest``, and both must
see the same drift verdicts, retrain on the same windows and promote the same versions.

Eight weeks from Monday 2026-01-05, the world shifting from week 4 (2026-02-02). The first model
learns from weeks 0-2 (``training.window`` 21D); weeks 3 to 7 are replayed. Weeks 4 and 5 drift
(two in a row start a retrain), the drift retrain learns from the onset (weeks 4-5) and becomes
champion; weeks 6 and 7 are scored by it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

import pytest

from tests.integration.conftest import START, task_states, week, xcom_value

pytestmark = pytest.mark.integration

CHANGE = 4  # the week the world shifts
WEEKS = range(3, 8)  # the replayed weeks


def _iso(d: datetime) -> str:
    return d.isoformat() + "+00:00"


@pytest.fixture(scope="module")
def project(project_factory):
    from include.simulator import StreamSpec, simulate

    project = project_factory(training__window="21D", monitoring__consecutive=2, monitoring__cooldown="7D", monitoring__drift_share=0.5)
    project.land(simulate(StreamSpec(start=START, days=56, drift_start=week(CHANGE)[0], rows_per_day=150)))
    return project


def _landing_digest(project) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(project.landing.iterdir())}


@pytest.fixture(scope="module")
def backtested(project, tmp_path_factory, mlflow_server):
    """``driftloop backtest`` on the project's config, in this process (as a user runs it); with
    --mlflow, logging its summary to the test's MLflow server."""
    import os

    from include import cli

    out = tmp_path_factory.mktemp("backtest")
    before = _landing_digest(project)
    code = cli.main(
        [
            "backtest",
            "--config",
            str(project.config),
            "--start",
            _iso(week(WEEKS[0])[0]),
            "--end",
            _iso(week(WEEKS[-1])[1]),
            "--every",
            "7D",
            "--policies",
            "static,every:2,drift",
            "--out",
            str(out),
            "--mlflow",
            "--quiet",
        ]
    )
    assert code == 0
    # the user's MLflow is where it was, and no landing file was touched
    assert os.environ["MLFLOW_TRACKING_URI"] == mlflow_server
    assert _landing_digest(project) == before
    return out, json.loads((out / "result.json").read_text())


def test_the_outputs_hold_what_the_contract_says(backtested):
    out, result = backtested
    starts = [_iso(week(k)[0]) for k in WEEKS]
    assert [i["start"] for i in result["intervals"]] == starts
    for name in ("static", "every:2", "drift"):
        record = result["policies"][name]
        assert list(record["metric"]) == starts
        assert all(v is None or 0.0 <= v <= 1.0 for v in record["metric"].values())
        assert all(isinstance(r, str) for r in record["retrains"])
    assert (out / "policies.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (out / "summary.md").read_text()
    assert "| policy | roc_auc before 2026-02-02 | roc_auc from 2026-02-02 |" in summary
    assert result["onsets"] == [_iso(week(CHANGE)[0])] and result["onsets_from"] == "static"


def test_each_policy_retrains_as_it_says(backtested):
    _, result = backtested
    policies = result["policies"]
    assert policies["static"]["retrains"] == []
    # every:2 retrains at the end of the 2nd and 4th replayed weeks
    assert policies["every:2"]["retrains"] == [_iso(week(4)[1]), _iso(week(6)[1])]
    assert [r["reason"] for r in policies["every:2"]["retrain_runs"]] == ["initial", "schedule", "schedule"]
    # drift: nothing before the change, then one retrain once two weeks in a row drifted, learning
    # from the onset, and promoted; the new champion no longer sees drift
    drift = policies["drift"]
    assert drift["retrains"] == drift["promotions"] == [_iso(week(5)[1])]
    retrain = drift["retrain_runs"][-1]
    assert (retrain["reason"], retrain["start"], retrain["version"]) == ("drift", _iso(week(CHANGE)[0]), 2)
    assert drift["drifted"] == [_iso(week(4)[0]), _iso(week(5)[0])]
    assert [i["champion"] for i in drift["intervals"]] == [1, 1, 1, 2, 2]
    # static's model stays stale: the drift policy's new champion does better after the change
    after = [_iso(week(k)[0]) for k in (6, 7)]
    assert min(drift["metric"][k] for k in after) > max(policies["static"]["metric"][k] for k in after) + 0.05


@pytest.fixture(scope="module")
def through_the_dags(project, dagbag, backtested):
    """The same weeks through the DAGs: ingest the history, the initial retrain, then per week
    ingest, monitor and drift_watch, and a retrain run with the conf drift_watch triggered."""
    assert project.ingest(week(0)[0], week(WEEKS[0])[0]).state == "success"
    first = project.run("retrain", {"end": _iso(week(WEEKS[0])[0]), "reason": "initial"})
    assert first.state == "success", task_states(first)
    sensor = dagbag.dags["drift_watch"].get_task("wait_for_drift")
    saved = sensor.timeout, sensor.poke_interval
    sensor.timeout, sensor.poke_interval = 2, 1  # nothing pending: the run ends skipped at once
    retrains = []
    try:
        for k in WEEKS:
            assert project.ingest(*week(k)).state == "success"
            assert project.monitor(*week(k)).state == "success"
            watched = project.run("drift_watch")
            # the sensor's answer is what trigger_retrain passes on (its run id is derived from the
            # drift's end alone, so in this test session's shared Airflow DB another module's drift
            # retrain may already hold it: the trigger is then skipped, and mark_handled still runs)
            if task_states(watched)["mark_handled"] == "success":
                pending = xcom_value(watched, "wait_for_drift")
                conf = {"reason": "drift", "start": pending["start"], "end": pending["end"]}
                run = project.run("retrain", conf)
                assert run.state == "success", task_states(run)
                retrains.append(conf)
    finally:
        sensor.timeout, sensor.poke_interval = saved
    return retrains


def test_the_dags_and_the_backtest_decide_the_same(through_the_dags, backtested, project, mlflow_client):
    _, result = backtested
    drift = result["policies"]["drift"]
    verdicts = project.storage.verdicts()
    assert [v["start"] for v in verdicts] == [i["start"] for i in drift["intervals"]]
    # the same verdicts: drift, its share, the champion that was scored and its live metric
    for verdict, replayed in zip(verdicts, drift["intervals"], strict=True):
        assert (verdict["drift"], verdict["model_version"]) == (replayed["drift"], replayed["champion"]), verdict["start"]
        assert verdict["drift_share"] == pytest.approx(replayed["drift_share"], abs=1e-12)
        assert verdict["live_metric"] == pytest.approx(replayed["metric"], abs=1e-9)
    # the same retrains, on the same windows
    replayed = [r for r in drift["retrain_runs"] if r["reason"] == "drift"]
    assert [(c["start"], c["end"]) for c in through_the_dags] == [(r["start"], r["end"]) for r in replayed]
    # the same promotions: the champion's history in the registry
    history = json.loads(mlflow_client.get_registered_model(project.name).tags["driftloop.champion_history"])
    assert history == [1, *(r["version"] for r in replayed if r["promoted"])] == [1, 2]


def test_the_backtest_logs_a_run_per_policy_under_one_parent(backtested, project, mlflow_client):
    _, result = backtested
    experiment = mlflow_client.get_experiment_by_name(f"{project.name}-backtest")
    runs = mlflow_client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = {r.data.tags["driftloop.policy"]: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert len(parents) == 1 and set(children) == {"static", "every:2", "drift"}
    assert all(c.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for c in children.values())
    assert {a.path for a in mlflow_client.list_artifacts(parents[0].info.run_id)} == {"result.json", "policies.png", "summary.md"}
    steps = mlflow_client.get_metric_history(children["drift"].info.run_id, "roc_auc")
    assert [m.step for m in steps] == list(range(len(WEEKS)))
    assert [m.value for m in steps] == pytest.approx(list(result["policies"]["drift"]["metric"].values()))
    assert children["drift"].data.metrics["retrains"] == 1 and children["static"].data.metrics["retrains"] == 0


def test_one_csv_export_and_its_config_are_enough(tmp_path, capsys):
    """A team's own export (examples/churn: one CSV, naive times, codes and flags) with its config
    and nothing else: the default span (from the first day plus training.window to the day after
    the last event), the table on standard output, the picture and the summary."""
    from include import cli
    from tests.conftest import ROOT

    config = ROOT / "examples" / "churn" / "churn.yaml"
    before = (ROOT / "examples" / "churn" / "landing" / "subscriptions.csv").read_bytes()
    out = tmp_path / "out"
    assert (
        cli.main(["backtest", "--config", str(config), "--policies", "static,drift", "--out", str(out), "--work", str(tmp_path / "w")]) == 0
    )
    printed = capsys.readouterr()
    assert printed.out.startswith("| policy | roc_auc before 2026-04-13 | roc_auc from 2026-04-13 |")
    assert "4 intervals of 7D from 2026-03-30 to 2026-04-27" in printed.err
    result = json.loads((out / "result.json").read_text())
    assert list(result["policies"]["drift"]["metric"]) == [f"2026-{d}T00:00:00+00:00" for d in ("03-30", "04-06", "04-13", "04-20")]
    assert result["onsets"] == ["2026-04-13T00:00:00+00:00"]
    # the price rise is drift (one drifted week starts a retrain in this config), learnt from its onset
    runs = [r for r in result["policies"]["drift"]["retrain_runs"] if r["reason"] == "drift"]
    assert runs and runs[0]["start"] == "2026-04-13T00:00:00+00:00"
    assert all(r["detail"] for r in runs)  # promoted or not, the summary says why
    assert (out / "policies.png").stat().st_size > 10_000 and "## Retrains" in (out / "summary.md").read_text()
    # the replay kept (--work) is inspectable: each policy's storage and MLflow
    assert (tmp_path / "w" / "drift" / "mlflow" / "mlflow.db").exists() and (tmp_path / "w" / "drift" / "storage" / "verdicts").is_dir()
    assert (ROOT / "examples" / "churn" / "landing" / "subscriptions.csv").read_bytes() == before


def test_labels_in_their_own_files_replay_as_labels_in_the_rows(tmp_path):
    """The same weeks with the target in the batches, and with it in ``data.labels`` files that
    arrive apart (split across files, in another order): the same metrics and business values,
    the same retrains. With ``business`` configured, its value is in every interval and the table."""
    from include import cli
    from include.simulator import StreamSpec, simulate, write_daily_batches
    from tests.conftest import write_config

    frame = simulate(StreamSpec(start=START, days=42, drift_start=week(3)[0], rows_per_day=150))
    business = {"metric": "expected_value", "values": {"tp": 100, "fp": -500, "fn": 0, "tn": 0}}
    results = {}
    for how in ("inline", "files"):
        folder = tmp_path / how
        overrides = {"training__window": "14D", "monitoring__consecutive": 2, "model__params": {"max_iter": 40}, "business": business}
        if how == "files":
            labels = folder / "labels"
            labels.mkdir(parents=True)
            shuffled = frame[["id", "repaid"]].sample(frac=1.0, random_state=1)
            for n, part in enumerate((shuffled.iloc[: len(shuffled) // 2], shuffled.iloc[len(shuffled) // 2 :])):
                part.to_csv(labels / f"labels_{n}.csv", index=False)
            write_daily_batches(frame.drop(columns=["repaid"]), str(folder / "landing"))
            overrides["data__labels"] = str(labels)
        else:
            write_daily_batches(frame, str(folder / "landing"))
        config = write_config(folder, name=f"labels_{how}", **overrides)
        out = folder / "out"
        args = ["backtest", "--config", str(config), "--start", _iso(week(2)[0]), "--end", _iso(week(6)[0])]
        assert cli.main([*args, "--policies", "static,drift", "--out", str(out), "--quiet"]) == 0
        results[how] = json.loads((out / "result.json").read_text())
        assert "| expected_value |" in (out / "summary.md").read_text()
    for name in ("static", "drift"):
        inline, files = results["inline"]["policies"][name], results["files"]["policies"][name]
        assert None not in inline["metric"].values() and None not in inline["business"].values()
        assert files["metric"] == pytest.approx(inline["metric"], abs=1e-12)
        assert files["business"] == pytest.approx(inline["business"], abs=1e-9)
        assert files["retrains"] == inline["retrains"]
    assert results["files"]["policies"]["drift"]["retrains"] == [_iso(week(4)[1])]
