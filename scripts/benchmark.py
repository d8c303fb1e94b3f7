"""Measures what BENCHMARKS.md records, each figure beside a same-run baseline.

1. Parse time of each DAG file as the scheduler's DagBag sees it, against the same file with the
   heavy libraries (pandas, scikit-learn, MLflow, GX, Evidently) imported at top level.
2. The ``retrain`` DAG run with ``dag.test()`` on the demo's first four weeks against a real MLflow
   server, against a plain Python script doing the same scikit-learn work (time-based CV + fit);
   wall time and peak memory (max RSS) of each, each in a fresh process.

    python scripts/benchmark.py [--repeat 3]

Prints a Markdown table. Every measurement runs in its own subprocess.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

HEAVY = "import pandas, sklearn.ensemble, mlflow, great_expectations, evidently  # noqa\n"

PARSE = """
import json, sys
from airflow.models import DagBag
bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
print(json.dumps(sum(s.duration.total_seconds() for s in bag.dagbag_stats)))
"""

PLAIN = """
import json, resource, sys, time
t = time.perf_counter()
from include.config import load_settings
from include.storage import Storage, Window
from include import training
s = load_settings(sys.argv[1])
frame = Storage.from_settings(s).read_curated(Window.parse(sys.argv[2], sys.argv[3]))
cv, last = training.cross_validate(frame, s)
model = training.fit(frame, s)
print(json.dumps({"seconds": time.perf_counter() - t, "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "cv_mean": cv.mean}))
"""

DAG = """
import json, resource, sys, time
t = time.perf_counter()
from airflow.models import DagBag
bag = DagBag(dag_folder=sys.argv[4])
dag = bag.dags[sys.argv[5]]
run = dag.test(run_conf=json.loads(sys.argv[6]))
print(json.dumps({"seconds": time.perf_counter() - t, "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "state": str(run.state)}))
"""


def env(extra: dict | None = None) -> dict:
    from services import base_env

    return base_env(**(extra or {}))


def run_json(code: str, *args: str, extra_env: dict | None = None) -> dict | float:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env(extra_env), cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def parse_times(repeat: int, home: Path) -> list[tuple[str, float, float]]:
    rows = []
    heavy_dir = home / "heavy_dags"
    heavy_dir.mkdir()
    for dag_file in sorted((ROOT / "dags").glob("*.py")):
        heavy = heavy_dir / dag_file.name
        future = "from __future__ import annotations\n"
        heavy.write_text(dag_file.read_text().replace(future, future + HEAVY, 1))
        extra = {"AIRFLOW_HOME": str(home / "airflow")}
        light = statistics.median(run_json(PARSE, str(dag_file), extra_env=extra) for _ in range(repeat))
        loaded = statistics.median(run_json(PARSE, str(heavy), extra_env=extra) for _ in range(repeat))
        rows.append((dag_file.name, light, loaded))
    return rows


def retrain_vs_plain(repeat: int, home: Path) -> tuple[dict, dict]:
    from services import free_port, mlflow_command, wait_http

    from include.simulator import StreamSpec, simulate, write_daily_batches
    from include.storage import Storage, Window
    from tests.conftest import write_config

    config = write_config(home, name="benchmark")
    from include.config import load_settings

    settings = load_settings(config)
    frame = simulate(StreamSpec(start=__import__("datetime").datetime(2026, 1, 5), days=28, rows_per_day=300))
    write_daily_batches(frame, settings.data.landing)
    window = Window.parse("2026-01-05", "2026-02-02")
    from include.curated import Commit
    from include.landing import LandingZone

    storage = Storage.from_settings(settings)
    staged = LandingZone.from_settings(settings, storage).read(window).frame
    storage.curated().replace(staged, window, Commit("publish", "benchmark", "benchmark"))

    port = free_port()
    bin_dir = Path(sys.executable).parent
    mlflow = subprocess.Popen(
        mlflow_command(home, port, workers=1),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env(),
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 120, "MLflow")
        extra = {"AIRFLOW_HOME": str(home / "airflow"), "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}", "DRIFTLOOP_CONFIG": str(config)}
        subprocess.run([str(bin_dir / "airflow"), "db", "migrate"], env=env(extra), check=True, capture_output=True)
        plain, dag = [], []
        for _ in range(repeat):
            plain.append(run_json(PLAIN, str(config), "2026-01-05", "2026-02-02", extra_env=extra))
            conf = json.dumps({"end": "2026-02-02", "reason": "manual", "window": "28D"})
            dag.append(run_json(DAG, str(config), "", "", str(ROOT / "dags"), "retrain", conf, extra_env=extra))
            assert dag[-1]["state"].endswith("success"), dag[-1]
    finally:
        os.killpg(mlflow.pid, 15)

    def med(items, k):
        return statistics.median(x[k] for x in items)

    return (
        {"seconds": med(plain, "seconds"), "max_rss_mb": med(plain, "max_rss_mb"), "n": repeat},
        {"seconds": med(dag, "seconds"), "max_rss_mb": med(dag, "max_rss_mb"), "n": repeat},
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="driftloop-bench-") as tmp:
        home = Path(tmp)
        parse = parse_times(args.repeat, home)
        plain, dag = retrain_vs_plain(args.repeat, home)
    print(f"\n### DAG parse time (DagBag, median of {args.repeat})\n")
    print("| DAG file | as shipped (s) | heavy imports at top level (s) | ratio |")
    print("|---|---|---|---|")
    for name, light, loaded in parse:
        print(f"| {name} | {light:.3f} | {loaded:.3f} | {loaded / light:.0f}x |")
    print(f"\n### retrain on 4 weeks of demo data (8,415 rows, {args.repeat} runs, median)\n")
    print("| what | wall (s) | peak RSS (MB) |")
    print("|---|---|---|")
    print(f"| plain script: time-based CV + fit (baseline) | {plain['seconds']:.1f} | {plain['max_rss_mb']:.0f} |")
    print(f"| `retrain` DAG with dag.test(), real MLflow server | {dag['seconds']:.1f} | {dag['max_rss_mb']:.0f} |")
    print(f"| ratio | {dag['seconds'] / plain['seconds']:.1f}x | {dag['max_rss_mb'] / plain['max_rss_mb']:.1f}x |")
    print(f"\n(took {time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
