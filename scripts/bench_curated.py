"""Publishing a window into the curated Delta table against the Parquet partition rewrite it
replaced (one file per event day, read, merged and written again), on the same rows, same run.

    .venv/bin/python scripts/bench_curated.py [--rows 1000000] [--days 7] [--repeat 3]

Prints the median seconds of each, their ratio, and what a re-run of the same window adds to the
table (rows, commits).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def frame(rows: int, days: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    start = pd.Timestamp("2026-01-05", tz="UTC")
    out = pd.DataFrame(
        {"id": np.arange(rows), "timestamp": start + pd.to_timedelta(np.sort(rng.integers(0, days * 86400, rows)), unit="s")}
    )
    for i in range(14):
        out[f"n{i}"] = rng.normal(size=rows)
    for i in range(6):
        out[f"c{i}"] = rng.choice(["a", "b", "c", "d"], rows)
    out["timestamp"] = out["timestamp"].astype("datetime64[us, UTC]")
    return out


def parquet_rewrite(root: Path, rows: pd.DataFrame, window) -> None:
    """The pre-Delta ``Storage.write_curated``: per day, read the partition, keep the rows outside
    the window, add the new ones, sort, write the file again."""
    by_day = dict(tuple(rows.groupby(rows["timestamp"].dt.strftime("%Y-%m-%d"))))
    for day, new in by_day.items():
        path = root / f"date={day}" / "data.parquet"
        if path.exists():
            old = pd.read_parquet(path)
            keep = ~window.contains(old["timestamp"]) & ~old["id"].isin(new["id"])
            new = pd.concat([old[keep], new], ignore_index=True) if keep.any() else new
        path.parent.mkdir(parents=True, exist_ok=True)
        new.sort_values(["timestamp", "id"], kind="stable").to_parquet(path, index=False)


def main() -> None:
    from include.curated import Commit, CuratedTable
    from include.storage import Window

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = frame(args.rows, args.days)
    window = Window.parse("2026-01-05", pd.Timestamp("2026-01-05") + pd.Timedelta(days=args.days))
    times = {"parquet": [], "delta": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            for kind in ("parquet", "delta"):  # alternated, each into a fresh folder, then a re-run
                folder = Path(tmp) / f"{kind}{i}"
                took = []
                for _ in range(2):  # first publish, then a re-run of the same window
                    t0 = time.perf_counter()
                    if kind == "parquet":
                        parquet_rewrite(folder, rows, window)
                    else:
                        CuratedTable(str(folder), "timestamp", "id").replace(rows, window, Commit("publish", "bench", f"run{i}"))
                    took.append(time.perf_counter() - t0)
                times[kind].append(took)
        table = CuratedTable(str(Path(tmp) / "delta0"), "timestamp", "id")
        stored, commits = table.count(window), len(table.history())
    for phase, idx in (("first publish", 0), ("re-run", 1)):
        p = statistics.median(t[idx] for t in times["parquet"])
        d = statistics.median(t[idx] for t in times["delta"])
        print(
            f"{phase:14s} {args.rows} rows x {rows.shape[1]} cols over {args.days} days: parquet rewrite {p:.2f} s, delta {d:.2f} s, ratio {d / p:.2f}x"
        )
    print(f"after publish + re-run: {stored} rows in the table (batch {len(rows)}), {commits} commits")


if __name__ == "__main__":
    main()
