"""``make bench``'s writer: what it keeps of BENCHMARKS.md, what it replaces, and how it reports the
load runs (no benchmark is timed here; the figures come from running the scripts)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "scripts") not in sys.path:
    sys.path.insert(0, str(ROOT / "scripts"))

import bench  # noqa: E402


@pytest.fixture
def target(tmp_path, monkeypatch):
    path = tmp_path / "BENCHMARKS.md"
    monkeypatch.setattr(bench, "TARGET", path)
    return path


def test_the_first_run_puts_its_section_under_the_title_and_keeps_the_notes(target):
    target.write_text("# Benchmarks\n\nMachine: old notes.\n\n## An earlier figure\n\n| a | b |\n")
    bench.rewrite("## Latest\n\nfigure 1")
    text = target.read_text()
    assert text.startswith(f"# Benchmarks\n\n{bench.BEGIN}\n## Latest\n\nfigure 1\n{bench.END}\n\nMachine: old notes.")
    assert "## An earlier figure\n\n| a | b |" in text


def test_a_later_run_replaces_only_its_section(target):
    target.write_text("# Benchmarks\n\nintro\n")
    bench.rewrite("## Latest\n\nfigure 1")
    bench.rewrite("## Latest\n\nfigure 2")
    text = target.read_text()
    assert "figure 2" in text and "figure 1" not in text
    assert text.count(bench.BEGIN) == 1 and text.count(bench.END) == 1 and text.endswith("intro\n")


def test_a_run_of_some_benchmarks_keeps_the_others_subsections(target, monkeypatch):
    outputs = {"parse": "### Parse time\n\n| parse figure 1 |\n\n### drift-free heading\n\nmore", "drift": "| drift figure 1 |"}
    scripts = {"python scripts/benchmark.py --repeat 3": "parse", "python scripts/bench_drift.py": "drift"}
    monkeypatch.setattr(bench, "run", lambda command: (0, outputs[scripts[command]], "", 1.0))
    target.write_text("# Benchmarks\n\nnotes\n")
    monkeypatch.setattr(sys, "argv", ["bench.py", "--only", "parse,drift"])
    bench.main()
    outputs.update(drift="| drift figure 2 |")
    monkeypatch.setattr(sys, "argv", ["bench.py", "--only", "drift"])
    bench.main()
    text = target.read_text()
    assert "| parse figure 1 |" in text and "| drift figure 2 |" in text and "drift figure 1" not in text
    # a kept subsection is kept whole, the headings of its script's output included
    assert "### Parse time\n\n| parse figure 1 |\n\n### drift-free heading\n\nmore" in text
    # in the commands' order, each once, dated, and the earlier notes kept after the section
    assert text.index("### parse (") < text.index("### drift (") and text.count("### drift (") == 1
    assert text.count(bench.BEGIN) == 1 and text.endswith("notes\n")


def load(target: str, wall: float, **changes) -> dict:
    run = {
        "target": target,
        "workers": 2 if target == "cluster" else "local",
        "days": 50,
        "wall_s": wall,
        "intervals_per_min": round(50 / wall * 60, 2),
        "monitor_runs": {"success": 25, "failed": 0},
        "verdicts": 50,
        "publish_commits": 50,
        "rows_landed": 14861,
        "rows_curated": 14861,
        "ids_unique": True,
        "predictions": 14861,
        "predictions_unique": True,
        "task_instances_per_host": {"worker-1": 228, "worker-2": 212},
    }
    return {**run, **changes}


def test_the_load_table_compares_with_standalone_and_says_when_exactly_once_broke():
    table = bench.cluster_table(
        [load("cluster", 1500.0), load("cluster", 1800.0, workers=1, predictions=14862), load("standalone", 3000.0)]
    )
    two, one, standalone = table.splitlines()[2:]
    assert "cluster, 2 Celery worker(s) | 1500 | 2.00 | 2.00x the throughput" in two and two.endswith("worker-1 228, worker-2 212 |")
    assert "14862 predictions: NO" in one and "1.67x the throughput" in one
    assert standalone.startswith("| `airflow standalone`") and "1.00x" in standalone and ": yes" in standalone


def test_a_failed_benchmark_is_reported_with_its_error_and_the_others_kept():
    text = bench.section("scale", ["python scripts/bench_scale.py"], [(1, "", "Traceback ...\nRuntimeError: MLflow down", 12.0)])
    assert "**Failed** (exit 1): `python scripts/bench_scale.py`" in text and "RuntimeError: MLflow down" in text
    ok = bench.section("parse", ["python scripts/benchmark.py --repeat 3"], [(0, "| a | b |\n", "", 3.0)])
    assert "```bash\npython scripts/benchmark.py --repeat 3\n```" in ok and "| a | b |" in ok and "Failed" not in ok


def test_the_scale_table_puts_each_step_beside_its_baseline_and_the_monitor_to_its_verdict():
    import bench_scale

    def step(wall, rss):
        return {"wall": wall, "max_rss_mb": rss}

    tasks = {"window": [[100.0, 101.0, "success"]], "score": [[101.0, 104.0, "success"]], "drift": [[104.0, 110.0, "success"]]}
    tasks["report"] = [[110.0, 130.0, "success"]]
    monitor = {**step(40.0, 900), "tasks": tasks, "to_verdict": bench_scale.span(tasks, "score", "drift")}
    result = {"rows": 1_000_000, "gate": step(9.0, 1500), "gate_plain": step(3.0, 800), "monitor": monitor, "monitor_plain": step(8.0, 700)}
    result["gate_champion"] = step(12.0, 1600)
    result.update(retrain=step(60.0, 2500), retrain_plain=step(50.0, 1200), retrain_plain_openmp=step(30.0, 1300))
    lines = bench_scale.tables([result]).splitlines()
    retrain = [line for line in lines if "`retrain` DAG" in line]
    assert retrain[0].endswith("| 60.0 | 2,500 | 50.0 | 1,200 | 1.20x |") and "one OpenMP thread" in retrain[0]
    assert retrain[1].endswith("| 60.0 | 2,500 | 30.0 | 1,300 | 2.00x |") and "every core" in retrain[1]
    lines = [line for line in lines if line not in retrain]
    assert lines[2] == "| 1,000,000 | gate (read landing, validate, publish), no champion yet | 9.0 | 1,500 | 3.0 | 800 | 3.00x |"
    assert lines[3] == "| 1,000,000 | gate on the next 7 days, with the champion's learned tolerances | 12.0 | 1,600 | 3.0 | 800 | 4.00x |"
    assert lines[4] == "| 1,000,000 | `monitor` DAG | 40.0 | 900 | 8.0 | 700 | 5.00x |"
    assert lines[5] == "| 1,000,000 | `monitor` to its verdict (`score` start to `drift` end) | 9.0 | | 8.0 | | 1.12x |"
    breakdown = bench_scale.task_table(result, "monitor").splitlines()
    assert breakdown[2:] == ["| window | 1.0 |", "| score | 3.0 |", "| drift | 6.0 |", "| report | 20.0 |"]


def test_the_drift_tables_say_how_often_driftloop_agrees_with_evidently_and_how_cost_grows():
    import bench_drift

    ours = {"verdict": 2.0, "report": 9.0, "max_rss_mb": 800.0}
    result = {
        "rows": 1_000_000,
        "scenarios": {
            "none": {"ours": ours, "evidently": {"check": 70.0, "max_rss_mb": 1700.0}, "agree": 20, "differ": []},
            "mild_shift": {"ours": ours, "evidently": {"check": 72.0, "max_rss_mb": 1700.0}, "agree": 19, "differ": ["n03"]},
        },
        "agreement": {"agree": 39, "columns": 40, "share": 39 / 40},
        "cli_wall": 17.5,
        "scale": {"100000": {"verdict": 0.3, "read": 0.1, "max_rss_mb": 300.0}},
    }
    text = bench_drift.markdown(result)
    assert "| none | 2.00 | 9.00 | 800 | 70.0 | 1,700 | 35x | 20/20 |" in text
    assert "| mild_shift | 2.00 | 9.00 | 800 | 72.0 | 1,700 | 36x | 19/20 (differ: n03) |" in text
    assert "39/40 columns (97.5%)" in text and "| 100,000 | 0.30 | 0.10 | 300 |" in text
