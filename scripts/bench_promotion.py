"""From a drift verdict to a promoted champion, under ``airflow standalone``: how long it takes.

The demo's simulated stream at ``--rows`` training rows per 14-day window: two stable weeks are
ingested and a first champion is trained on them; then a drifted week is ingested. ``monitor``
writes its verdict (drift) and emits the verdict asset event; ``drift_watch`` wakes on that
event, finds the drift (``monitoring.consecutive: 1``) and triggers ``retrain`` (reason drift, the
last 14 days: one stable week and the drifted one); ``retrain`` promotes the new version.

The clock runs from the verdict's asset event (its timestamp in Airflow) to the end of the
``promote`` task that moved ``@champion`` (checked in MLflow). The baseline, measured in the same
run: the ``train`` task alone (the scikit-learn work on those rows plus its MLflow run), and each
step between the two with its queueing, so that where the time goes is seen.

    python scripts/bench_promotion.py [--rows 100000]

Prints a Markdown table and writes ``.bench-promotion/result.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
WORK = ROOT / ".bench-promotion"
START = datetime(2026, 1, 5)
DRIFT = START + timedelta(days=14)


def config(folder: Path) -> Path:
    import yaml

    raw = yaml.safe_load((ROOT / "include" / "demo.yaml").read_text())
    raw.update(name="bench_promotion", storage=str(folder / "store"))
    raw["data"]["landing"] = str(folder / "landing")
    raw["training"]["window"] = "14D"
    raw["monitoring"].update(consecutive=1, cooldown="1D", poke_interval=5)
    path = folder / "driftloop.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def moment(value: str | None) -> float:
    from datetime import datetime as dt

    return dt.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="training rows in the drift retrain's 14-day window")
    args = parser.parse_args()
    from services import Services, free_port, start, stop

    from include.airflow_api import Airflow
    from include.bootstrap import Driver
    from include.config import load_settings
    from include.simulator import StreamSpec, simulate, write_daily_batches
    from include.storage import Window

    def progress(text: str) -> None:
        print(f"[bench-promotion {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir()
    path = config(WORK)
    settings = load_settings(path)
    per_day = args.rows // 14
    progress(f"simulating 21 days x {per_day:,} rows")
    write_daily_batches(simulate(StreamSpec(start=START, days=21, drift_start=DRIFT, rows_per_day=per_day)), settings.data.landing)
    svc = Services(WORK / "services", free_port(), free_port(), path)
    try:
        start(svc)
        os.environ["MLFLOW_TRACKING_URI"] = svc.mlflow_url
        client = Airflow(svc.airflow_url, "admin", svc.password())
        driver = Driver(settings, client, prefix="bench", out=progress)
        driver.wait_for_dags()
        state, _ = driver.ingest(START, DRIFT)
        assert state == "success", "ingest of the two stable weeks failed"
        run_id, state = driver.retrain(DRIFT, "14D", "initial")
        assert state == "success", "the first retrain failed"
        progress("first champion trained; ingesting the drifted week")
        state, _ = driver.ingest(DRIFT, DRIFT + timedelta(days=7))
        assert state == "success", "ingest of the drifted week failed"
        verdict = driver.wait_for_verdict(DRIFT, DRIFT + timedelta(days=7))
        assert verdict["drift"], f"the drifted week was not judged drifted: {verdict['drift_share']}"
        deadline = time.monotonic() + 900
        drift_run = None
        while time.monotonic() < deadline and drift_run is None:
            done = [r for r in client.runs("retrain") if r["dag_run_id"].startswith("drift__") and r["state"] in ("success", "failed")]
            drift_run = done[0] if done else None
            time.sleep(3)
        assert drift_run and drift_run["state"] == "success", f"no successful drift retrain: {drift_run}"
        tis = [t for t in client.task_instances() if t["dag_id"] in ("monitor", "drift_watch", "retrain")]
        drifted = Window.parse(DRIFT, DRIFT + timedelta(days=7)).as_dict()["start"]  # as the verdict writes it (UTC)
        verdict_events = [
            e for e in client.asset_events() if e.get("uri") == "x-driftloop://verdicts" and (e.get("extra") or {}).get("start") == drifted
        ]
        assert verdict_events, "the drifted week's verdict event was not found"
        from mlflow import MlflowClient

        champion = MlflowClient(svc.mlflow_url).get_model_version_by_alias(settings.name, "champion")
    finally:
        stop(svc.home)

    retrain_tis = {t["task_id"]: t for t in tis if t["dag_id"] == "retrain" and t["dag_run_id"] == drift_run["dag_run_id"]}
    event_at = min(moment(e["timestamp"]) for e in verdict_events)
    promoted_at = moment(retrain_tis["promote"]["end_date"])
    steps = []
    watch = [t for t in tis if t["dag_id"] == "drift_watch" and t["state"] == "success" and moment(t["end_date"]) >= event_at]
    for t in sorted(watch, key=lambda t: moment(t["start_date"])) + sorted(
        retrain_tis.values(), key=lambda t: moment(t["start_date"] or "")
    ):
        if t["start_date"]:
            steps.append(
                {
                    "task": f"{t['dag_id']}.{t['task_id']}",
                    "queued_after_event_s": round(moment(t.get("queued_when")) - event_at, 1),
                    "start_after_event_s": round(moment(t["start_date"]) - event_at, 1),
                    "duration_s": round(t.get("duration") or 0.0, 1),
                }
            )
    result = {
        "rows": args.rows,
        "drifted_week_rows": verdict.get("rows"),
        "verdict_to_champion_s": round(promoted_at - event_at, 1),
        "train_task_s": round(retrain_tis["train"]["duration"], 1),
        "champion_version": int(champion.version),
        "drift_retrain": drift_run["dag_run_id"],
        "steps": steps,
    }
    (WORK / "result.json").write_text(json.dumps(result, indent=1))
    print(f"Drift verdict to promoted champion under `airflow standalone`, {args.rows:,} training rows ({per_day:,} a day over 14 days):\n")
    print("| what | seconds |")
    print("|---|---|")
    print(f"| verdict asset event to `@champion` moved (v{result['champion_version']}) | {result['verdict_to_champion_s']:.1f} |")
    print(f"| baseline: the `train` task alone | {result['train_task_s']:.1f} |")
    print(f"| ratio | {result['verdict_to_champion_s'] / result['train_task_s']:.2f}x |")
    print("\n| task | queued (s after the event) | started (s after the event) | ran (s) |")
    print("|---|---|---|---|")
    for s in steps:
        print(f"| {s['task']} | {s['queued_after_event_s']} | {s['start_after_event_s']} | {s['duration_s']} |")


if __name__ == "__main__":
    main()
