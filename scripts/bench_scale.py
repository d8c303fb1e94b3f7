"""The pipeline's heavy steps at scale, each beside a same-run baseline doing the bare work.

A feed like a real one (14 numeric and 6 categorical features, a binary target that depends on
them) lands as one Parquet file per day: ``rows`` rows over a 7-day training window, then
``rows`` more over the next 7 days (the monitored interval, mildly shifted). For each size:

    gate      the ingest gate on the training window as its two tasks call it (read landing,
              validate, stage; then publish into the curated Delta table)
              baseline: pandas reads the same files and deltalake writes them as a table;
              measured twice: on the training window (no champion yet), and on the monitored
              interval with the champion's learned tolerances (each run starts a fresh registry)
    retrain   the ``retrain`` DAG with ``dag.test()`` against a real MLflow server (gate, 5-fold
              time CV two folds at a time (``training.n_jobs: 2``), final fit, MLflow run,
              registration, comparison, promotion), one OpenMP thread, as the services run tasks
              baseline: a plain script reading the curated window and doing the same
              scikit-learn work (time-based CV, one fold after another, + fit), with one
              OpenMP thread, and again with OpenMP on every core (as it runs outside driftloop)
    monitor   the ``monitor`` DAG with ``dag.test()`` on the next 7 days (score with @champion,
              drift verdict, Evidently's report, guard); also its time to the verdict
              baseline: a plain script loading the model, reading both windows, scoring and
              running the drift check (``include.drift.column_drift``)

    python scripts/bench_scale.py [--rows 1000000] [--scale 100000,1000000,4000000] [--steps gate,retrain,monitor]

``--rows`` gets every step; the ``--scale`` sizes get the gate and retrain (how the cost grows).
Each measurement is its own process (wall time and its own peak RSS). Writes every figure to
``.bench-scale/result.json`` and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))
WORK = ROOT / ".bench-scale"
START = pd.Timestamp("2026-03-02", tz="UTC")
DAYS = 7
FOLDS = 5
N_JOBS = 2

_MEASURED = """
import json, resource, sys, time
t0 = time.perf_counter()
{body}
out["seconds"] = time.perf_counter() - t0
out["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out, default=str))
"""

GATE = """
from include.config import load_settings
from include.ingestion import check_landing, publish
from include.storage import Window
s = load_settings(sys.argv[1], check_metric=False)  # as the ingest DAG's tasks load it
w = Window.parse(sys.argv[2], sys.argv[3])
run = {"dag_id": "ingest", "run_id": "bench__" + sys.argv[2], "user": "bench", "at": sys.argv[3]}
t1 = time.perf_counter()
gated = check_landing(s, w, run)
t2 = time.perf_counter()
published = publish(s, w, run)
out = {"imports": t1 - t0, "check": t2 - t1, "publish": time.perf_counter() - t2, "rows": published["rows"]}
"""

GATE_PLAIN = """
import pandas as pd
from deltalake import write_deltalake
files = sorted(__import__("glob").glob(sys.argv[1] + "/*.parquet"))
frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
write_deltalake(sys.argv[2], frame, mode="overwrite")
out = {"rows": len(frame)}
"""

RETRAIN_PLAIN = """
from include.config import load_settings
from include.storage import Storage, Window
from include import training
s = load_settings(sys.argv[1])
s.training.n_jobs = 1  # a plain script fits its folds one after another
frame = Storage.from_settings(s).read_curated(Window.parse(sys.argv[2], sys.argv[3]))
frame[s.data.target] = frame[s.data.target].astype("int64")
cv, last = training.cross_validate(frame, s)
model = training.fit(frame, s)
out = {"rows": len(frame), "cv_mean": cv.mean}
"""

MONITOR_PLAIN = """
from include.config import load_settings
from include.storage import Storage, Window
from include import drift, registry, training
s = load_settings(sys.argv[1])
storage = Storage.from_settings(s)
model = registry.load_model(f"models:/{s.name}@champion")
reference = storage.read_curated(Window.parse(sys.argv[2], sys.argv[3]))
reference = reference.sample(n=min(len(reference), s.monitoring.reference_rows), random_state=0)
current = storage.read_curated(Window.parse(sys.argv[3], sys.argv[4]))
features = drift.plain_features(current, s.data.numeric, s.data.categorical)
predictions = training.predict(model, features, s.data.features, s.model.task)
columns = drift.column_drift(reference, current, s.data, s.monitoring.columns)
out = {"rows": len(current), "drift_share": drift.drift_decision(columns, s.monitoring.drift_share)["drift_share"]}
"""

DAG = """
from airflow.models import DagBag
bag = DagBag(dag_folder=sys.argv[1])
run = bag.dags[sys.argv[2]].test(run_conf=json.loads(sys.argv[3]))
tasks = {}
for ti in run.get_task_instances():
    if ti.start_date and ti.end_date:
        tasks.setdefault(ti.task_id, []).append([ti.start_date.timestamp(), ti.end_date.timestamp(), str(ti.state)])
out = {"state": str(run.state), "tasks": tasks}
"""


def frame(rows: int, start: pd.Timestamp, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """The bench feed (``bench_drift``'s 20 columns) over ``DAYS`` days from ``start``, with a target
    that the features explain in part."""
    from bench_drift import frame as features

    table = features(rows, seed, "mild_shift" if shift else "none")
    rng = np.random.default_rng(seed + 100)
    table["id"] = np.arange(rows, dtype=np.int64) + seed * 10**9
    table["ts"] = start + pd.to_timedelta(np.sort(rng.integers(0, DAYS * 86_400, rows)), unit="s")
    logit = (
        0.6 * (table["n00"] - 0.0) / 1.0
        - 0.4 * (table["n01"] - 10.0) / 2.0
        + 0.3 * np.log(table["n06"].clip(lower=1e-3))
        + 0.5 * (table["c0"] == "c0_00")
        - 0.3 * table["n13"].fillna(0.0)
        - 0.8
    )
    table["y"] = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype("int64")
    return table


def land(table: pd.DataFrame, landing: Path) -> None:
    landing.mkdir(parents=True, exist_ok=True)
    for day, part in table.groupby(table["ts"].dt.floor("D")):
        part.to_parquet(landing / f"batch_{day:%Y%m%d}.parquet", index=False)


def config(home: Path, rows: int) -> Path:
    from bench_drift import CATEGORICAL, NUMERIC

    raw = {
        "name": f"bench_scale_{rows}",
        "storage": str(home / "store"),
        "data": {
            "landing": str(home / "landing"),
            "timestamp": "ts",
            "id": "id",
            "target": "y",
            "numeric": NUMERIC,
            "categorical": CATEGORICAL,
        },
        "model": {"task": "classification", "metric": "roc_auc"},
        # two folds at a time, in threads (the "folds may run in parallel where cores allow")
        "training": {"window": f"{DAYS}D", "folds": FOLDS, "min_rows": 1000, "n_jobs": N_JOBS},
        "promotion": {"mode": "auto"},
        "schedule": {"ingest": None, "retrain": None},
    }
    path = home / "driftloop.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def measure(code: str, *args: str, extra: dict | None = None) -> dict:
    from services import base_env

    started = time.perf_counter()
    body = _MEASURED.format(body=code.strip())
    out = subprocess.run(
        [sys.executable, "-c", body, *map(str, args)], capture_output=True, text=True, cwd=ROOT, env=base_env(**(extra or {}))
    )
    wall = time.perf_counter() - started
    if out.returncode:
        raise RuntimeError(out.stderr[-4000:])
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "wall": wall}


def span(tasks: dict, first: str, last: str) -> float:
    """Seconds from the first task's start to the last one's end, from a DAG run's task instances."""
    return max(t[1] for t in tasks[last]) - min(t[0] for t in tasks[first])


def bench_size(rows: int, steps: list[str], extra: dict, progress) -> dict:
    home = WORK / str(rows)
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    cfg = config(home, rows)
    train_end = START + timedelta(days=DAYS)
    monitor_end = train_end + timedelta(days=DAYS)
    progress(f"{rows:,} rows: writing the feed")
    land(frame(rows, START, seed=1), home / "landing")
    result: dict = {"rows": rows}
    env = {**extra, "DRIFTLOOP_CONFIG": str(cfg)}

    progress(f"{rows:,} rows: gate (baseline, then driftloop)")
    result["gate_plain"] = measure(GATE_PLAIN, home / "landing", home / "plain_delta", extra=env)
    shutil.rmtree(home / "plain_delta")
    result["gate"] = measure(GATE, cfg, START.isoformat(), train_end.isoformat(), extra=env)
    if "retrain" in steps or "monitor" in steps:
        progress(f"{rows:,} rows: retrain (baseline, then the DAG)")
        result["retrain_plain"] = measure(RETRAIN_PLAIN, cfg, START.isoformat(), train_end.isoformat(), extra=env)
        # the same plain script as a user runs it outside driftloop: OpenMP on every core
        every_core = {**env, "OMP_NUM_THREADS": str(os.cpu_count() or 1)}
        result["retrain_plain_openmp"] = measure(RETRAIN_PLAIN, cfg, START.isoformat(), train_end.isoformat(), extra=every_core)
        conf = {"end": train_end.isoformat(), "window": f"{DAYS}D", "reason": "initial"}
        result["retrain"] = measure(DAG, ROOT / "dags", "retrain", json.dumps(conf), extra=env)
        assert result["retrain"]["state"].endswith("success"), result["retrain"]
    if "monitor" in steps:
        progress(f"{rows:,} rows: monitor (ingest the next {DAYS} days, baseline, then the DAG)")
        land(frame(rows, train_end, seed=2, shift=0.05), home / "landing")
        # the gate again, now with a champion: its learned tolerances are checked too
        result["gate_champion"] = measure(GATE, cfg, train_end.isoformat(), monitor_end.isoformat(), extra=env)
        args = (cfg, START.isoformat(), train_end.isoformat(), monitor_end.isoformat())
        result["monitor_plain"] = measure(MONITOR_PLAIN, *args, extra=env)
        conf = {"start": train_end.isoformat(), "end": monitor_end.isoformat()}
        result["monitor"] = measure(DAG, ROOT / "dags", "monitor", json.dumps(conf), extra=env)
        assert result["monitor"]["state"].endswith("success"), result["monitor"]
        result["monitor"]["to_verdict"] = span(result["monitor"]["tasks"], "score", "drift")
    return result


def tables(results: list[dict]) -> str:
    def mb(r: dict) -> str:
        return f"{r['max_rss_mb']:,.0f}"

    lines = [
        "| rows | step | driftloop (s) | peak RSS (MB) | baseline (s) | baseline peak RSS (MB) | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        n = f"{r['rows']:,}"
        pairs = [
            ("gate (read landing, validate, publish), no champion yet", "gate", "gate_plain"),
            ("gate on the next 7 days, with the champion's learned tolerances", "gate_champion", "gate_plain"),
            (f"`retrain` DAG ({N_JOBS} folds at a time) against the plain script, one OpenMP thread", "retrain", "retrain_plain"),
            ("`retrain` DAG against the plain script, OpenMP on every core", "retrain", "retrain_plain_openmp"),
            ("`monitor` DAG", "monitor", "monitor_plain"),
        ]
        for label, ours, plain in pairs:
            if ours in r and plain in r:
                a, b = r[ours], r[plain]
                lines.append(f"| {n} | {label} | {a['wall']:.1f} | {mb(a)} | {b['wall']:.1f} | {mb(b)} | {a['wall'] / b['wall']:.2f}x |")
        if "monitor" in r:
            a, b = r["monitor"], r["monitor_plain"]
            lines.append(
                f"| {n} | `monitor` to its verdict (`score` start to `drift` end) | {a['to_verdict']:.1f} | | {b['wall']:.1f} | | {a['to_verdict'] / b['wall']:.2f}x |"
            )
    return "\n".join(lines)


def task_table(result: dict, dag: str) -> str:
    tasks = result[dag]["tasks"]
    lines = [f"| `{dag}` task | seconds |", "|---|---|"]
    for task_id, spans in sorted(tasks.items(), key=lambda kv: min(t[0] for t in kv[1])):
        lines.append(f"| {task_id} | {sum(t[1] - t[0] for t in spans):.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--scale", default="100000,4000000", help="more sizes for the gate and retrain (comma-separated; '' for none)")
    parser.add_argument("--steps", default="gate,retrain,monitor")
    args = parser.parse_args()
    from services import base_env, free_port, mlflow_command, wait_http

    def progress(message: str) -> None:
        print(f"[bench-scale {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    WORK.mkdir(exist_ok=True)
    # a fresh registry each run: the first gate of each size runs without a champion, the
    # monitored interval's with the one retrain promoted (a registry kept from an earlier run
    # would give the first gate a champion too, and the figures would depend on the run before)
    for stale in ("mlflow.db", "artifacts"):
        path = WORK / stale
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    steps = args.steps.split(",")
    port = free_port()
    mlflow = subprocess.Popen(
        mlflow_command(WORK, port, workers=1), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=base_env()
    )
    started = time.time()
    results = []
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 120, "MLflow")
        extra = {"AIRFLOW_HOME": str(WORK / "airflow"), "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}"}
        subprocess.run(
            [str(Path(sys.executable).parent / "airflow"), "db", "migrate"], env=base_env(**extra), check=True, capture_output=True
        )
        sizes = [(args.rows, steps)] + [(int(n), [s for s in steps if s != "monitor"]) for n in args.scale.split(",") if n]
        for rows, size_steps in sorted(sizes):
            results.append(bench_size(rows, size_steps, extra, progress))
            (WORK / "result.json").write_text(json.dumps(results, indent=1))
    finally:
        os.killpg(mlflow.pid, 15)
    print(f"\n### Gate, retrain and monitor at scale (20 features, {FOLDS} folds, {DAYS}-day windows)\n")
    print(tables(results))
    main_result = next(r for r in results if r["rows"] == args.rows)
    for dag in ("retrain", "monitor"):
        if dag in main_result:
            print(f"\nWhere `{dag}`'s time goes at {args.rows:,} rows (task instances' own durations):\n")
            print(task_table(main_result, dag))
    print(f"\n(took {time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
