"""
### drift_watch

A `DriftSensor` waits until the monitor's verdicts call for a retrain: the latest
`monitoring.consecutive` intervals drifted (share of drifted features >= `monitoring.drift_share`),
the latest is not yet handled, and the last drift-started retrain is at least `monitoring.cooldown`
older (event time). It then triggers `retrain` with `{"reason": "drift", "start": <onset>, "end": <end of the
drifted interval>}` under a run id derived from that end, so the same drift never starts two
retrains, and marks the verdicts handled. With `monitoring.drift_window: onset` (the default) the
retrain learns from the first drifted interval of the streak on (at most `training.window`), and
waits until those intervals hold `training.min_rows` rows; with `training`, from the last
`training.window`.

Runs on each new verdict and hourly; a run that finds nothing within its timeout ends as skipped.
"""

from __future__ import annotations

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import AssetOrTimeSchedule, dag, task

from drift_sensor import DriftSensor
from driftloop_airflow import ALERT_ON_RESULT, DEFAULT_ARGS, REGISTRY_POOL, TAGS, VERDICTS, settings, start_date, trigger_schedule
from include.config import load_dag_settings

CONFIG = load_dag_settings()


@dag(
    dag_id="drift_watch",
    schedule=AssetOrTimeSchedule(timetable=trigger_schedule("@hourly"), assets=[VERDICTS]),
    start_date=start_date(CONFIG.schedule.start_date),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=[*TAGS, "monitor"],
    doc_md=__doc__,
)
def drift_watch():
    wait_for_drift = DriftSensor(
        task_id="wait_for_drift",
        doc_md=(
            "Waits until the latest `monitoring.consecutive` verdicts drifted, unhandled and outside the cooldown; "
            "returns the drift's window (from its onset), its verdicts and the retrain run id that answers it."
        ),
        poke_interval=CONFIG.monitoring.poke_interval,
        timeout=CONFIG.monitoring.watch_timeout,
        soft_fail=True,
    )

    trigger_retrain = TriggerDagRunOperator(
        task_id="trigger_retrain",
        doc_md="Starts `retrain` with `reason: drift` on the drift's window, under a run id derived from its end (the same drift never starts two retrains).",
        trigger_dag_id="retrain",
        trigger_run_id="{{ ti.xcom_pull(task_ids='wait_for_drift')['retrain_run_id'] }}",
        conf={
            "reason": "drift",
            "start": "{{ ti.xcom_pull(task_ids='wait_for_drift')['start'] }}",
            "end": "{{ ti.xcom_pull(task_ids='wait_for_drift')['end'] }}",
        },
        skip_when_already_exists=True,
        logical_date=None,
    )

    # runs when the trigger ran or was skipped because that retrain already exists (a re-run),
    # and is skipped with the sensor when there was nothing to answer
    # writes drift_watch's trigger record and the verdicts' handled marks: one writer at a time
    @task(trigger_rule="none_failed_min_one_success", on_success_callback=ALERT_ON_RESULT, pool=REGISTRY_POOL)
    def mark_handled(drift: dict) -> dict:
        """Records that the triggered retrain answers these drifted verdicts (so the same drift never starts two
        retrains) and sends the `drift` alert."""
        from include.monitoring import mark_handled as mark

        return mark(settings(), drift, drift["retrain_run_id"])

    trigger_retrain >> mark_handled(wait_for_drift.output)
    wait_for_drift >> trigger_retrain


drift_watch()
