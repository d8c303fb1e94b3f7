"""Runs every benchmark and rewrites the measured part of BENCHMARKS.md.

    python scripts/bench.py [--only parse,drift,scale,promotion,backtest,dashboard,cluster] [--days 50]

Each benchmark is its own script, run here as its own process with the command printed beside its
figures (every figure has a same-run baseline and its ratio, and peak memory):

    parse     scripts/benchmark.py        DAG parse time; ``retrain`` on the demo's four weeks
    drift     scripts/bench_drift.py      the drift check at 1M rows a side against Evidently on
                                          all rows, nine scenarios; growth at 100k / 1M / 4M
    scale     scripts/bench_scale.py      the gate, ``retrain`` and ``monitor`` at 1M x 20 against
                                          plain scripts; the gate and retrain at 100k and 4M
    promotion scripts/bench_promotion.py  drift verdict to promoted champion under ``airflow
                                          standalone``, 100k training rows, against ``train`` alone
    backtest  scripts/bench_backtest.py   ``driftloop backtest`` of static, every:4 and drift on
                                          four simulated streams with a known change point
    dashboard scripts/bench_dashboard.py  a year of weekly snapshots sent to Evidently's UI: the
                                          report task's cost with and without them, the service's
                                          memory and restart time
    cluster   scripts/bench_cluster.py    50 daily intervals on the Celery cluster (2 workers, 1)
                                          against ``airflow standalone``

BENCHMARKS.md keeps what is outside the generated section (earlier sessions' notes). Inside it, each
benchmark has its own subsection, dated and with its commit: a run replaces the subsections of the
benchmarks it ran (``--only``) and keeps the others. A benchmark that fails is reported as such
in the section, with the end of its error output, and the others still run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "BENCHMARKS.md"
BEGIN = "<!-- make bench: generated section, begin -->"
END = "<!-- make bench: generated section, end -->"


def commands(days: int) -> dict[str, list[str]]:
    """Each benchmark's commands, as shown in BENCHMARKS.md (``python`` is the venv's)."""
    return {
        "parse": ["python scripts/benchmark.py --repeat 3"],
        "drift": ["python scripts/bench_drift.py"],
        "scale": ["python scripts/bench_scale.py"],
        "promotion": ["python scripts/bench_promotion.py"],
        "backtest": ["python scripts/bench_backtest.py --copy-demo docs/backtest"],
        "dashboard": ["python scripts/bench_dashboard.py"],
        "cluster": [
            f"python scripts/bench_cluster.py --target {t} --days {days}"
            for t in ("cluster --workers 2", "cluster --workers 1", "standalone")
        ],
    }


def machine() -> str:
    mem = next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    return f"{os.cpu_count()} cores, {int(mem) / 2**20:.0f} GiB, Python {platform.python_version()}"


def commit() -> str:
    try:
        found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    except OSError:
        found = ""
    return found or "unknown"


def run(command: str) -> tuple[int, str, str, float]:
    """One benchmark command with the venv's Python: exit code, stdout, the tail of stderr, seconds."""
    argv = [sys.executable, *command.split()[1:]]
    started = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
    sys.stderr.write(out.stderr[-2000:])
    return out.returncode, out.stdout, out.stderr[-3000:], time.perf_counter() - started


def cluster_table(lines: list[dict]) -> str:
    """The load runs' JSON lines as one table, each against the standalone run."""
    base = next((r for r in lines if r["target"] == "standalone"), None)
    rows = [
        "| target | wall for the intervals (s) | intervals/min | against standalone | monitor runs | exactly once (commits, rows, verdicts, predictions) | task instances per host |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in lines:
        what = (
            "`airflow standalone` (LocalExecutor, SQLite)" if r["target"] == "standalone" else f"cluster, {r['workers']} Celery worker(s)"
        )
        ratio = f"{base['wall_s'] / r['wall_s']:.2f}x the throughput" if base else "no baseline"
        once = (
            r["publish_commits"] == r["days"]
            and r["rows_curated"] == r["rows_landed"]
            and r["ids_unique"]
            and r["verdicts"] == r["days"]
            and r["predictions"] == r["rows_curated"]
            and r["predictions_unique"]
        )
        facts = f"{r['publish_commits']} commits, {r['rows_curated']}/{r['rows_landed']} rows, {r['verdicts']} verdicts, {r['predictions']} predictions: {'yes' if once else 'NO'}"
        hosts = ", ".join(f"{h} {n}" for h, n in sorted(r["task_instances_per_host"].items()))
        rows.append(
            f"| {what} | {r['wall_s']:.0f} | {r['intervals_per_min']:.2f} | {ratio} | {r['monitor_runs']['success']} | {facts} | {hosts} |"
        )
    return "\n".join(rows)


def section(name: str, argvs: list[str], results: list[tuple[int, str, str, float]], when: str = "") -> str:
    shown = "\n".join(argvs)
    parts = [f"### {name}{f' ({when})' if when else ''}\n\n```bash\n{shown}\n```\n"]
    failed = [(a, r) for a, r in zip(argvs, results, strict=True) if r[0] != 0]
    if name == "cluster":
        lines = [json.loads(line) for _, out, _, _ in results for line in out.splitlines() if line.startswith("{")]
        if lines:
            parts.append(cluster_table(lines))
    else:
        parts.extend(out.strip() for code, out, _, _ in results if code == 0)
    for argv, (code, _, err, _) in failed:
        parts.append(f"**Failed** (exit {code}): `{argv}`\n\n```\n{err.strip()[-1500:]}\n```")
    parts.append(f"\n(took {sum(r[3] for r in results):.0f} s)")
    return "\n\n".join(parts)


def kept_sections() -> dict[str, str]:
    """The benchmark subsections of the generated section now in BENCHMARKS.md, by benchmark name."""
    text = TARGET.read_text() if TARGET.exists() else ""
    if BEGIN not in text or END not in text:
        return {}
    block = text.split(BEGIN, 1)[1].split(END, 1)[0]
    # a subsection starts at its benchmark's own heading; a script's output has headings too
    names = "|".join(map(re.escape, commands(0)))
    parts = re.split(rf"^(?=### (?:{names})(?: \(|$))", block, flags=re.M)
    return {part.split(maxsplit=2)[1]: part.strip() for part in parts if part.startswith("### ")}


def rewrite(generated: str) -> None:
    text = TARGET.read_text() if TARGET.exists() else "# Benchmarks\n"
    block = f"{BEGIN}\n{generated.strip()}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:  # first run: the generated section goes under the title, earlier notes after it
        title, _, rest = text.partition("\n")
        text = f"{title}\n\n{block}\n\n{rest.lstrip()}"
    TARGET.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="parse,drift,scale,promotion,backtest,dashboard,cluster")
    parser.add_argument("--days", type=int, default=50)
    args = parser.parse_args()
    chosen = args.only.split(",")
    todo = commands(args.days)
    unknown = set(chosen) - set(todo)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}; choose from {', '.join(todo)}")
    sections = kept_sections()
    for name in chosen:
        argvs = todo[name]
        print(f"[bench] {name}: {len(argvs)} command(s)", file=sys.stderr, flush=True)
        started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        results = [run(a) for a in argvs]
        sections[name] = section(name, argvs, results, f"{started}, commit {commit()}")
        # written after each benchmark: a long run stopped midway keeps what it measured
        rewrite(header() + "\n\n".join(sections[n] for n in todo if n in sections))
    print(f"[bench] rewrote {TARGET}", file=sys.stderr)


def header() -> str:
    return (
        "## Latest `make bench`\n\n"
        f"Machine: {machine()}. Written by `make bench` (scripts/bench.py): each figure beside a\n"
        "baseline measured in the same run, with the command that produced it; each benchmark's\n"
        "subsection says when it last ran and on which commit (`make bench ONLY=drift` replaces only\n"
        "that one). Absolute times move between machines; the ratios travel. The notes after this\n"
        "section are earlier sessions' runs.\n\n"
    )


if __name__ == "__main__":
    main()
