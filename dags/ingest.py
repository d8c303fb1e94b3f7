"""
### ingest

The landing rows with `start <= timestamp < end` go through the data-quality gate (Great
Expectations). A good batch replaces the window's rows of the curated Delta table in one commit
(whose metadata names this run and the window), and the `driftloop_curated` asset event (extra: the
window) starts `monitor`. A bad batch becomes a numbered quarantine entry
(`quarantine/<NNNN>__<window>/`: its rows per file as read, `report.md`), and the `gate` task fails
naming the column, the rule and the numbers. Every row of the files read is accounted for in the
task log (curated or quarantined, held, already published, pending).

Run conf / form:
- `{"start": ISO, "end": ISO}`: the window (scheduled runs use their data interval).
- `{"force": true}`: replace the window even if that drops more than `quality.max_curated_drop` of
  its curated rows (landing files removed by retention).
- `{"accept": "<quarantine entry>", "reason": "..."}`: curate a quarantined batch as it was
  quarantined; who, when and why go into the entry and the Delta commit.

Landing files that arrive after a window they have rows in was published are *late*: the `gate`
alerts with the files and windows; re-ingest those windows, or set `schedule.late: reingest` and
this DAG re-ingests them itself (`reingest_late`).
"""

from __future__ import annotations

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Param, dag, get_current_context, task

from driftloop_airflow import (
    ALERT_ON_RESULT,
    CURATED,
    CURATED_POOL,
    DEFAULT_ARGS,
    TAGS,
    fail_without_retry,
    interval_schedule,
    settings,
    start_date,
    time_param,
)
from include.config import load_dag_settings

CONFIG = load_dag_settings()


def _run_info() -> dict:
    ctx = get_current_context()
    run = ctx["dag_run"]
    return {
        "dag_id": run.dag_id,
        "run_id": run.run_id,
        "user": getattr(run, "triggering_user_name", None),
        "at": run.run_after.isoformat(),
    }


@dag(
    dag_id="ingest",
    schedule=interval_schedule(CONFIG.schedule.ingest),
    start_date=start_date(CONFIG.schedule.start_date),
    catchup=CONFIG.schedule.catchup,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=[*TAGS, "ingest"],
    doc_md=__doc__,
    params={
        "start": time_param("UTC if no zone", "Window start"),
        "end": time_param("excluded", "Window end"),
        "force": Param(False, type="boolean", title="Force", description="replace the window even if that drops many of its curated rows"),
        "accept": Param(
            None,
            type=["null", "string"],
            title="Accept quarantine entry",
            description="a quarantine entry id (NNNN__<start>__<end>) to curate as it was quarantined",
        ),
        "reason": Param(None, type=["null", "string"], title="Reason", description="why the entry is accepted (required with accept)"),
    },
)
def ingest():
    @task
    def window() -> dict:
        """The window this run ingests: the run conf / form (`start`, `end`), the quarantine entry named by
        `accept`, or the scheduled data interval."""
        from include.quarantine import Quarantine
        from include.storage import Storage
        from include.windows import NoWindow, interval_window

        ctx = get_current_context()
        params = ctx["params"]
        if params.get("accept"):
            with fail_without_retry():
                entry = Quarantine(Storage.from_settings(settings())).entry(params["accept"])
            return entry["window"]
        with fail_without_retry(NoWindow):
            return interval_window(params, interval=(ctx.get("data_interval_start"), ctx.get("data_interval_end"))).as_dict()

    @task(pool=CURATED_POOL, on_success_callback=ALERT_ON_RESULT)
    def gate(span: dict) -> dict:
        """The data-quality gate (Great Expectations) on the window's landing rows, with the champion's learned
        tolerances once a champion exists. A batch that fails is quarantined
        (`quarantine/<entry>/report.md` names the column, the rule and the numbers) and the task fails
        without retries; one that passes is staged for `publish`. Alerts on late files, files of no
        window and rules set to `warn`."""
        from include.ingestion import check_accepted, check_landing
        from include.storage import Window

        params = get_current_context()["params"]
        with fail_without_retry():
            if params.get("accept"):
                return check_accepted(settings(), params["accept"], params.get("reason"), _run_info())
            return check_landing(settings(), Window.parse(**span), _run_info(), force=bool(params.get("force")))

    @task(pool=CURATED_POOL, outlets=[CURATED])
    def publish(span: dict, gated: dict) -> dict:
        """Replaces the window's curated rows with the staged batch in one Delta commit (a re-run replaces, never
        duplicates), records the files it came from, closes the window's quarantine entries, and emits
        the `driftloop_curated` event that starts `monitor`."""
        from include.ingestion import publish as publish_rows
        from include.storage import Window

        force = bool(get_current_context()["params"].get("force"))
        with fail_without_retry():
            result = publish_rows(settings(), Window.parse(**span), _run_info(), force=force)
        get_current_context()["outlet_events"][CURATED].extra = {**span, "rows": result["rows"], "version": result["version"]}
        return result

    # apart from gate and publish: late rows must be re-ingested whether this run's own window
    # passes or not (and a failed gate must still fail the run, which Airflow judges by its leaves)
    @task(pool=CURATED_POOL)
    def late_windows() -> list[dict]:
        """With `schedule.late: reingest`, one ingest run per window that late files still have
        rows in (from the manifest: a window re-ingested since is no longer late)."""
        from include.landing import LandingZone

        cfg = settings()
        if cfg.schedule.late != "reingest":
            return []
        # the run id names the late state (window and files): the same late rows are re-ingested once
        return [
            {"trigger_run_id": f"late__{key}", "conf": {"start": w.start.isoformat(), "end": w.end.isoformat()}}
            for key, w in LandingZone.from_settings(cfg).late_runs()
        ]

    # re-ingests windows that late landing files have rows in (schedule.late: reingest)
    reingest_late = TriggerDagRunOperator.partial(
        task_id="reingest_late",
        doc_md="Starts an `ingest` run for each window late landing files still have rows in (`schedule.late: reingest`).",
        trigger_dag_id="ingest",
        skip_when_already_exists=True,
        logical_date=None,
    )

    span = window()
    publish(span, gate(span))
    reingest_late.expand_kwargs(late_windows())


ingest()
