"""The drift check at scale, against Evidently on all rows of both sides.

Synthetic columns like a real feed's (14 numeric: normal, skewed, integer counts, a few-valued
code, one with nulls; 6 categorical: 2 to 50 levels, one of integer codes) are written as Parquet,
a reference and one current file per scenario:

    none          the same distributions, other rows
    mild_shift    every numeric column's mean moved by 0.05 standard deviations
    strong_shift  ... by 0.5 standard deviations
    variance      every numeric column's spread times 1.5
    frequencies   every categorical column's level frequencies tilted
    new_category  every categorical column gains a level holding 10% of the rows
    nulls         10% more nulls in every column
    one_column    one numeric column shifted by 1 standard deviation, 19 unchanged
    all_columns   strong_shift and frequencies together: all 20 columns

For each scenario, in fresh processes: driftloop's verdict (``include.drift.column_drift`` on all
rows, then Evidently's HTML report from a sample: what ``monitor`` and ``driftloop drift`` run),
and Evidently's own ``DataDriftPreset`` on all rows of both sides (the baseline, and the verdicts
to agree with). Then driftloop's check alone at other sizes (how its cost grows with rows).

    python scripts/bench_drift.py [--rows 1000000] [--scale 100000,1000000,4000000] [--scenarios all]

Prints Markdown tables and writes every figure to ``.bench-drift/result.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".bench-drift"
NUMERIC = [f"n{i:02d}" for i in range(14)]
CATEGORICAL = [f"c{i}" for i in range(6)]
LEVELS = {"c0": 3, "c1": 5, "c2": 10, "c3": 2, "c4": 50, "c5": 8}
SCENARIOS = ["none", "mild_shift", "strong_shift", "variance", "frequencies", "new_category", "nulls", "one_column", "all_columns"]

# every process measured: its wall time by steps, and its own peak RSS
OURS = """
import json, resource, sys, time
t0 = time.perf_counter()
from include.config import load_settings
from include import drift
from include.landing import read_table
from include.storage import open_fs
s = load_settings(sys.argv[1])
t1 = time.perf_counter()
reference, current = (read_table(*open_fs(path)) for path in sys.argv[2:4])  # as `driftloop drift` reads them
t2 = time.perf_counter()
columns = drift.column_drift(reference, current, s.data, s.monitoring.columns)
decision = drift.drift_decision(columns, s.monitoring.drift_share)
t3 = time.perf_counter()
report = sys.argv[4] == "report"
if report:
    html = drift.drift_report(reference, current, s.data, columns, s.monitoring.drift_share, s.monitoring.report_rows)
t4 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "read": t2 - t1, "verdict": t3 - t2, "report": t4 - t3 if report else None,
    "check": t4 - t2, "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "drifted": {c: r["drifted"] for c, r in columns.items()}, "methods": {c: r["method"] for c, r in columns.items()},
    "drift": decision["drift"]}))
"""

EVIDENTLY = """
import json, os, resource, sys, time
os.environ["DO_NOT_TRACK"] = "1"
t0 = time.perf_counter()
import numpy as np, pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset
numeric, categorical = json.loads(sys.argv[3]), json.loads(sys.argv[4])
t1 = time.perf_counter()
reference, current = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
for frame in (reference, current):
    for c in categorical:
        frame[c] = frame[c].astype(object).where(frame[c].notna(), np.nan)
t2 = time.perf_counter()
definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
with np.errstate(divide="ignore", invalid="ignore"):
    snapshot = Report([DataDriftPreset(columns=numeric + categorical)], include_tests=True).run(
        Dataset.from_pandas(current[numeric + categorical], data_definition=definition),
        Dataset.from_pandas(reference[numeric + categorical], data_definition=definition),
    )
drifted = {t["metric_config"]["params"]["column"]: t["status"] == "FAIL" for t in snapshot.dict()["tests"] if t["id"] == "drift"}
t3 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "read": t2 - t1, "check": t3 - t2,
    "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "drifted": drifted}))
"""


def frame(rows: int, seed: int, scenario: str = "none") -> pd.DataFrame:
    """``rows`` rows of the synthetic feed, changed as ``scenario`` says."""
    rng = np.random.default_rng(seed)
    shift = {"mild_shift": 0.05, "strong_shift": 0.5, "all_columns": 0.5}.get(scenario, 0.0)
    spread = 1.5 if scenario == "variance" else 1.0
    out = {"id": np.arange(rows, dtype=np.int64) + seed * 10**9}
    out["ts"] = pd.Timestamp("2026-03-02", tz="UTC") + pd.to_timedelta(rng.integers(0, 86_400, rows), unit="s")
    for i, col in enumerate(NUMERIC):
        moved = shift + (1.0 if scenario == "one_column" and col == "n00" else 0.0)
        if i < 6:  # normal, each its own scale
            mu, sigma = 10.0 * i, 1.0 + i
            values = rng.normal(mu + moved * sigma, sigma * spread, rows)
        elif i < 9:  # skewed (log-normal)
            base = rng.lognormal(0.0, 0.75, rows)
            values = (base - 1.0) * spread + 1.0 + moved * base.std()
        elif i < 11:  # integer counts
            values = np.round(rng.poisson(12, rows) * spread + moved * 12**0.5).astype("float64")
        elif i == 11:  # uniform
            values = rng.uniform(0, 1, rows) * spread + moved * 0.29
        elif i == 12:  # a few-valued code
            values = rng.choice([0.0, 1.0, 2.0, 3.0], rows, p=[0.4, 0.3, 0.2, 0.1] if moved < 0.5 else [0.25, 0.25, 0.25, 0.25])
        else:  # normal with 5% nulls
            values = rng.normal(moved, spread, rows)
            values[rng.random(rows) < 0.05] = np.nan
        out[col] = values
    for col in CATEGORICAL:
        k = LEVELS[col]
        p = np.linspace(2.0, 1.0, k)
        if scenario in ("frequencies", "all_columns"):
            p = p[::-1] ** 2
        p = p / p.sum()
        codes = rng.choice(k, rows, p=p)
        names = np.array([str(c + 1) for c in range(k + 1)] if col == "c5" else [f"{col}_{c:02d}" for c in range(k + 1)], dtype=object)
        if scenario == "new_category":
            codes = np.where(rng.random(rows) < 0.1, k, codes)
        values = names[codes]
        out[col] = values.astype("int64") if col == "c5" else values
    table = pd.DataFrame(out)
    if scenario == "nulls":
        for col in NUMERIC + CATEGORICAL:
            table.loc[rng.random(rows) < 0.1, col] = np.nan if col in NUMERIC else None
    table["y"] = (rng.random(rows) < 0.3).astype("int64")
    return table


def config(path: Path) -> Path:
    raw = {
        "name": "bench_drift",
        "storage": str(WORK / "store"),
        "data": {
            "landing": str(WORK / "landing"),
            "timestamp": "ts",
            "id": "id",
            "target": "y",
            "numeric": NUMERIC,
            "categorical": CATEGORICAL,
        },
        "model": {"task": "classification", "metric": "roc_auc"},
    }
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def write(rows: int, scenario: str, role: str) -> Path:
    path = WORK / f"{role}_{scenario}_{rows}.parquet"
    if not path.exists():
        frame(rows, seed=1 if role == "reference" else 2, scenario=scenario).to_parquet(path, index=False)
    return path


def measure(code: str, *args: str) -> dict:
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT, env=_env())
    wall = time.perf_counter() - started
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "wall": wall}


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def cli_wall(cfg: Path, reference: Path, current: Path) -> float:
    """The whole ``driftloop drift --json --report`` command, as a user runs it."""
    command = Path(sys.executable).parent / "driftloop"
    started = time.perf_counter()
    run = [
        command,
        "drift",
        "--config",
        cfg,
        "--reference",
        reference,
        "--current",
        current,
        "--json",
        "--report",
        WORK / "report.html",
        "--quiet",
    ]
    out = subprocess.run(run, capture_output=True, text=True, env=_env())
    if out.returncode not in (0, 1):
        raise RuntimeError(out.stderr[-3000:])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--scale", default="100000,1000000,4000000", help="row counts for the growth table ('' for none)")
    parser.add_argument("--scenarios", default="all")
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    cfg = config(WORK / "driftloop.yaml")
    scenarios = SCENARIOS if args.scenarios == "all" else args.scenarios.split(",")
    result = {"rows": args.rows, "scenarios": {}, "scale": {}}
    reference = write(args.rows, "none", "reference")
    agree = total = 0
    for scenario in scenarios:
        current = write(args.rows, scenario, "current")
        ours = measure(OURS, str(cfg), str(reference), str(current), "report")
        theirs = measure(EVIDENTLY, str(reference), str(current), json.dumps(NUMERIC), json.dumps(CATEGORICAL))
        same = [c for c in theirs["drifted"] if theirs["drifted"][c] == ours["drifted"][c]]
        agree, total = agree + len(same), total + len(theirs["drifted"])
        differ = sorted(set(theirs["drifted"]) - set(same))
        ours_drifted = sum(1 for v in ours["drifted"].values() if v)
        theirs_drifted = sum(1 for v in theirs["drifted"].values() if v)
        result["scenarios"][scenario] = {"ours": ours, "evidently": theirs, "agree": len(same), "differ": differ, "cli_wall": None}
        progress(
            f"{scenario:13s} ours: verdict {ours['verdict']:.2f} s + report {ours['report']:.2f} s, {ours['max_rss_mb']:.0f} MB, "
            f"{ours_drifted} drifted | Evidently all rows: {theirs['check']:.1f} s, {theirs['max_rss_mb']:.0f} MB, {theirs_drifted} drifted | "
            f"agree {len(same)}/{len(theirs['drifted'])} {differ or ''}"
        )
    result["agreement"] = {"agree": agree, "columns": total, "share": agree / total if total else None}
    result["cli_wall"] = cli_wall(cfg, reference, write(args.rows, scenarios[-1], "current"))
    progress(f"agreement: {agree}/{total} = {agree / total:.1%}; `driftloop drift --json --report` wall {result['cli_wall']:.1f} s")
    for rows in [int(r) for r in args.scale.split(",") if r]:
        ref, cur = write(rows, "none", "reference"), write(rows, "strong_shift", "current")
        ours = measure(OURS, str(cfg), str(ref), str(cur), "verdict")
        result["scale"][rows] = ours
        progress(
            f"scale {rows:>9,} rows a side: verdict {ours['verdict']:.2f} s, read {ours['read']:.2f} s, peak {ours['max_rss_mb']:.0f} MB"
        )
    (WORK / "result.json").write_text(json.dumps(result, indent=2))
    print(markdown(result))


def progress(message: str) -> None:
    print(f"[bench-drift {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def markdown(result: dict) -> str:
    """The result as BENCHMARKS.md shows it: per scenario against Evidently on all rows, then growth."""
    rows = result["rows"]
    lines = [
        f"Drift check on {rows:,} rows a side x 20 columns (14 numeric, 6 categorical), each scenario in fresh processes.",
        "driftloop: the verdict on all rows (`include.drift.column_drift`), then Evidently's HTML report from a sample.",
        "Baseline: Evidently's `DataDriftPreset` on all rows of both sides (whose verdicts are the ones to agree with).",
        "",
        "| scenario | driftloop verdict (s) | + report (s) | peak RSS (MB) | Evidently, all rows (s) | peak RSS (MB) | verdict speed-up | columns agreeing |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in result["scenarios"].items():
        ours, theirs = r["ours"], r["evidently"]
        differ = f" (differ: {', '.join(r['differ'])})" if r["differ"] else ""
        lines.append(
            f"| {name} | {ours['verdict']:.2f} | {ours['report']:.2f} | {ours['max_rss_mb']:,.0f} | {theirs['check']:.1f} | "
            f"{theirs['max_rss_mb']:,.0f} | {theirs['check'] / ours['verdict']:.0f}x | {r['agree']}/{r['agree'] + len(r['differ'])}{differ} |"
        )
    a = result["agreement"]
    lines += [
        "",
        f"Agreement with Evidently on all rows: {a['agree']}/{a['columns']} columns ({a['share']:.1%}). "
        f"The whole `driftloop drift --json --report` command (imports, reading both files, verdict, report): {result['cli_wall']:.1f} s.",
        "",
        "How the verdict's cost grows with rows (a side; strong shift; reading the Parquet files apart):",
        "",
        "| rows a side | verdict (s) | read (s) | peak RSS (MB) |",
        "|---|---|---|---|",
    ]
    for n, r in result["scale"].items():
        lines.append(f"| {int(n):,} | {r['verdict']:.2f} | {r['read']:.2f} | {r['max_rss_mb']:,.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
