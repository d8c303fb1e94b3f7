"""
### ingest

The landing rows with `start <= timestamp < end` go through the data-quality gate (Great
Expectations). A good batch lands in curated storage, replacing what an earlier run of the same
window wrote, and the `driftloop_curated` asset event (extra: the window) starts `monitor`. A bad
batch goes to `quarantine/<window>/` with `report.md`, and the `gate` task fails naming the column,
the rule and the numbers.

Run conf / form: `{"start": ISO, "end": ISO}`; scheduled runs use their data interval.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context, task

from driftloop_airflow import ALERT_ON_RESULT, CURATED, DEFAULT_ARGS, TAGS, fail_without_retry, interval_schedule, settings, start_date
from include.config import load_dag_settings

CONFIG = load_dag_settings()


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
        "start": Param(None, type=["null", "string"], format="date-time", description="window start (UTC if no zone)"),
        "end": Param(None, type=["null", "string"], format="date-time", description="window end, excluded"),
    },
)
def ingest():
    @task
    def window() -> dict:
        from include.windows import NoWindow, interval_window

        ctx = get_current_context()
        with fail_without_retry(NoWindow):
            return interval_window(ctx["params"], interval=(ctx.get("data_interval_start"), ctx.get("data_interval_end"))).as_dict()

    @task(retries=0, on_success_callback=ALERT_ON_RESULT)
    def gate(span: dict) -> dict:
        from include.config import ConfigError
        from include.ingestion import check_landing
        from include.quality import DataQualityError
        from include.storage import Window

        with fail_without_retry(DataQualityError, ConfigError):
            return check_landing(settings(), Window.parse(**span))

    @task(outlets=[CURATED])
    def publish(span: dict, gated: dict) -> dict:
        from include.ingestion import publish as publish_rows
        from include.storage import Window

        result = publish_rows(settings(), Window.parse(**span))
        get_current_context()["outlet_events"][CURATED].extra = {**span, "rows": result["rows"]}
        return result

    span = window()
    publish(span, gate(span))


ingest()
