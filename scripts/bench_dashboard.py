"""What the model-health dashboard costs: per interval, and as it fills up over a year.

For ``--intervals`` intervals (52: a year of weekly ones) of the drift benchmark's synthetic feed
(20 columns; ``monitoring.report_rows`` rows a side, 5000 by default), each is what ``monitor``'s
``report`` task does: one Evidently run of the drift preset on the sample, with the verdict's
figures as metrics (``include.dashboard.verdict_value_class``) and without them (the baseline: the report
as it was drawn before the dashboard), its HTML, and the snapshot sent to a real ``evidently ui``
service (``Dashboard.publish``). Then the service's memory with every snapshot in it, its restart
time (it reads every snapshot at start), and the dashboard's data request.

    python scripts/bench_dashboard.py [--intervals 52] [--rows 5000]

Prints a Markdown table and writes every figure to ``.bench-dashboard/result.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]
WORK = ROOT / ".bench-dashboard"

from bench_drift import CATEGORICAL, NUMERIC, frame  # noqa: E402
from services import evidently_command, free_port, wait_http  # noqa: E402


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (the service runs under ``evidently``'s CLI)."""
    total = 0
    for proc in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{proc}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def _children(pid: int) -> list[int]:
    try:
        kids = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return kids + [g for k in kids for g in _children(k)]


def start(workspace: Path, port: int, secret: str) -> tuple[subprocess.Popen, float]:
    env = {**os.environ, "EVIDENTLY_SECRET": secret, "DO_NOT_TRACK": "1"}
    log = WORK / "server.log"
    started = time.perf_counter()
    with log.open("ab") as out:
        proc = subprocess.Popen(evidently_command(workspace, port), env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    wait_http(f"http://127.0.0.1:{port}/api/version", 600, "Evidently UI", log)
    return proc, time.perf_counter() - started


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, 15)
    proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--intervals", type=int, default=52)
    parser.add_argument("--rows", type=int, default=5000)
    args = parser.parse_args()
    os.environ["DO_NOT_TRACK"] = "1"
    from include import dashboard, drift
    from include.storage import Window

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir()
    data = SimpleNamespace(numeric=NUMERIC, categorical=CATEGORICAL, features=NUMERIC + CATEGORICAL)
    settings = SimpleNamespace(
        name="bench_dashboard", model=SimpleNamespace(metric="roc_auc"), monitoring=SimpleNamespace(drift_share=0.5), business=None
    )
    reference = frame(args.rows, 1)
    columns = drift.column_drift(reference, frame(args.rows, 2), data)
    port, secret = free_port(), secrets.token_urlsafe(16)
    proc, first_start = start(WORK / "workspace", port, secret)
    board = dashboard.Dashboard(f"http://127.0.0.1:{port}", secret)
    base_rss = rss_mb(proc.pid)
    t0 = datetime(2026, 1, 5, tzinfo=UTC)
    plain, with_figures, html_seconds, publish, sizes = [], [], [], [], []
    for k in range(args.intervals):
        window = Window(t0 + timedelta(days=7 * k), t0 + timedelta(days=7 * (k + 1)))
        current = frame(args.rows, 100 + k, "strong_shift" if k >= args.intervals // 2 else "none")
        verdict = {
            "start": window.start.isoformat(),
            "end": window.end.isoformat(),
            "drift_share": 0.1,
            "drifted_columns": 2,
            "live_metric": 0.75,
            "shadow_metric": 0.72,
            "model_version": 1 + k // 13,
            "shadow_version": k // 13 or None,
            "rows": args.rows,
            "labelled_rows": args.rows // 2,
            "prediction_drift": {"score": 0.2, "threshold": 0.05, "method": "ks"},
            "mlflow_run_id": f"run{k}",
        }
        started = time.perf_counter()
        drift.drift_snapshot(reference, current, data, columns, 0.5, args.rows)
        plain.append(time.perf_counter() - started)
        started = time.perf_counter()
        run = drift.drift_snapshot(
            reference,
            current,
            data,
            columns,
            0.5,
            args.rows,
            metrics=dashboard.verdict_values(verdict, settings),
            timestamp=window.start.replace(tzinfo=None),
            metadata=dashboard.snapshot_metadata(verdict, window),
            tags=[dashboard.TAG],
        )
        with_figures.append(time.perf_counter() - started)
        started = time.perf_counter()
        run.html()
        html_seconds.append(time.perf_counter() - started)
        sizes.append(len(run.snapshot.dumps()) / 2**20)
        started = time.perf_counter()
        board.publish(settings, window, run.snapshot)
        publish.append(time.perf_counter() - started)
        print(f"interval {k + 1}/{args.intervals}: publish {publish[-1]:.2f} s", file=sys.stderr)
    full_rss = rss_mb(proc.pid)
    started = time.perf_counter()
    values = board.series(settings.name, ["drift_share", "live_metric", "champion_version"])
    series_seconds = time.perf_counter() - started
    assert len(values["drift_share"]) == args.intervals, values
    stop(proc)
    proc, restart = start(WORK / "workspace", port, secret)
    started = time.perf_counter()  # the service reads the workspace on its first request
    board.series(settings.name, ["drift_share"])
    first_request = time.perf_counter() - started
    restarted_rss = rss_mb(proc.pid)
    stop(proc)
    # the same figures without the drift preset's pictures: what a snapshot of figures alone weighs
    figures_only = drift.drift_snapshot(
        reference,
        current,
        data,
        dict.fromkeys(columns, {"method": None}),
        0.5,
        args.rows,
        metrics=dashboard.verdict_values(verdict, settings),
    )
    figures_mb = len(figures_only.snapshot.dumps()) / 2**20
    disk = sum(p.stat().st_size for p in (WORK / "workspace").rglob("*") if p.is_file()) / 2**20
    result = {
        "intervals": args.intervals,
        "rows_a_side": args.rows,
        "columns": len(data.features),
        "evidently_run_s": statistics.median(plain),
        "evidently_run_with_figures_s": statistics.median(with_figures),
        "html_s": statistics.median(html_seconds),
        "publish_s": statistics.median(publish),
        "publish_max_s": max(publish),
        "snapshot_mb": statistics.median(sizes),
        "workspace_mb": disk,
        "service_first_start_s": first_start,
        "service_rss_empty_mb": base_rss,
        "service_rss_full_mb": full_rss,
        "service_restart_s": restart,
        "service_first_request_after_restart_s": first_request,
        "service_rss_after_restart_mb": restarted_rss,
        "figures_only_snapshot_mb": figures_mb,
        "dashboard_series_s": series_seconds,
    }
    (WORK / "result.json").write_text(json.dumps(result, indent=2))
    print(f"| figure | {args.intervals} intervals, {len(data.features)} columns, {args.rows} rows a side |")
    print("|---|---|")
    print(f"| Evidently run per interval, drift preset only (baseline) | {result['evidently_run_s']:.2f} s |")
    print(f"| ... with the verdict's figures as metrics | {result['evidently_run_with_figures_s']:.2f} s |")
    print(f"| HTML of the same run | {result['html_s']:.2f} s |")
    print(f"| snapshot sent to the service (median / max) | {result['publish_s']:.2f} s / {result['publish_max_s']:.2f} s |")
    print(
        f"| snapshot size (the verdict's figures alone, without the drift preset's pictures) | {result['snapshot_mb']:.2f} MB ({figures_mb * 1024:.0f} KB) |"
    )
    print(f"| workspace on disk after all intervals | {result['workspace_mb']:.0f} MB |")
    print(
        f"| service memory: empty / with every snapshot / restarted, after its first request | {base_rss:.0f} / {full_rss:.0f} / {restarted_rss:.0f} MB |"
    )
    print(
        f"| service start: empty / with every snapshot (and its first request, which reads them) | {first_start:.1f} s / {restart:.1f} s ({first_request:.1f} s) |"
    )
    print(f"| dashboard data request (3 figures, every interval) | {series_seconds:.2f} s |")


if __name__ == "__main__":
    main()
