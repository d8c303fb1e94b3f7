"""
### monitor

Runs when `ingest` publishes curated rows (the asset event carries the window), or by hand with
`{"start": ISO, "end": ISO}`. Scores the interval with `@champion` (one prediction per id, replaced
on re-run), compares it with the champion's training window using Evidently, computes the live
metric where labels exist, and records a verdict: a JSON file, and a run in the
`<name>-monitoring` MLflow experiment; `report` then adds Evidently's HTML report (drawn from a
sample; the verdict is computed on all rows) and the interval's snapshot in the model-health
dashboard (Evidently's UI, one project per model). The verdict event wakes `drift_watch`. The previous champion scores the same rows as a shadow; `guard` rolls `@champion`
back to it when the champion trails it on the live metric (`monitoring.rollback: auto`). A
challenger under staged rollout (`promotion.strategy: shadow | canary`, alias `@candidate`) scores
beside the champion or serves its canary share of the rows; `rollout` promotes or retires it once
its labelled live rows decide. Without a champion the run is skipped. `catch_up` runs last: when curated events arrived during the run, it
emits `driftloop_monitor_backlog`, which starts monitor again for them (Airflow 3.3 gives a run only
the events up to its trigger time).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from airflow.sdk import TriggerRule, dag, get_current_context, task

from driftloop_airflow import (
    ALERT_ON_RESULT,
    CURATED,
    DEFAULT_ARGS,
    MONITOR_BACKLOG,
    REGISTRY_POOL,
    TAGS,
    VERDICTS,
    fail_without_retry,
    settings,
    start_date,
    time_param,
)
from include.config import load_dag_settings
from mlflow_link import mlflow_task

CONFIG = load_dag_settings()
log = logging.getLogger(__name__)


@dag(
    dag_id="monitor",
    schedule=(CURATED | MONITOR_BACKLOG),
    start_date=start_date(CONFIG.schedule.start_date),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=[*TAGS, "monitor"],
    doc_md=__doc__,
    params={
        "start": time_param("UTC if no zone", "Interval start"),
        "end": time_param("excluded", "Interval end"),
    },
)
def monitor():
    @task
    def window() -> list[dict]:
        """The intervals this run checks: the run conf / form, else one per curated event that triggered it
        (oldest first)."""
        from include.windows import NoWindow, interval_windows

        ctx = get_current_context()
        events = ctx.get("triggering_asset_events") or {}
        extras = [e.extra for evs in events.values() for e in evs]
        if events and not any(e.get("start") for e in extras):
            log.info("woken by catch_up: the curated events it saw are this run's or an earlier run's")
            return []
        with fail_without_retry(NoWindow):
            return [w.as_dict() for w in interval_windows(ctx["params"], extras)]

    @task
    def score(span: dict) -> dict:
        """Scores the interval's curated rows with `@champion` (and the previous champion as a shadow, and a
        candidate under staged rollout), writes one prediction per id (replaced on a re-run), and
        computes the live metric and the business value where labels exist. Skipped when there is no
        champion yet."""
        from airflow.sdk.exceptions import AirflowSkipException

        from include.monitoring import NoChampion, score_interval
        from include.storage import Window

        with fail_without_retry():  # a broken labels file (LabelsError) is data: no retry fixes it
            try:
                return {**score_interval(settings(check_metric=True), Window.parse(**span)), "span": span}
            except NoChampion as err:
                raise AirflowSkipException(str(err)) from err

    # Evidently's methods on all rows of the interval and its reference (see BENCHMARKS.md for the
    # cost per million rows). Expanded over the intervals that were scored: one that failed to
    # score does not stop the drift check of the others.
    @mlflow_task(
        report=True,
        outlets=[VERDICTS],
        execution_timeout=timedelta(hours=1),
        trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS,
        on_success_callback=ALERT_ON_RESULT,  # a business metric that fell
    )
    def drift(scored: dict) -> dict:
        """The drift verdict: each feature of the interval against the champion's training window (Evidently's
        methods, on all rows), prediction and target drift, the live metric; stored in `verdicts/` and
        as a run of the `<name>-monitoring` experiment. The **MLflow** button opens that run,
        **Evidently report** the interval's HTML report (drawn by `report`), **Model health** the model's
        dashboard in the Evidently UI. Its event wakes `drift_watch`."""
        from include.monitoring import check_drift
        from include.storage import Window

        verdict = check_drift(settings(), Window.parse(**scored["span"]), scored)
        get_current_context()["outlet_events"][VERDICTS].extra = verdict
        return verdict

    # Evidently's HTML pictures of a verdict, from a sample (a fixed cost per column, a few seconds
    # for twenty): a task of its own, so the verdict and drift_watch do not wait for them
    @mlflow_task(execution_timeout=timedelta(minutes=30))
    def report(verdict: dict) -> dict:
        """Evidently's report of the verdict, drawn from a sample (`monitoring.report_rows` a side) with the
        verdict's methods, and the verdict's own figures: HTML under `reports/<interval>/drift.html` and on
        the monitoring run, and the interval's snapshot in the model-health dashboard (the Evidently UI,
        when `EVIDENTLY_URL` names it; a re-run replaces it)."""
        from include.monitoring import draw_report
        from include.storage import Window

        return draw_report(settings(), Window.parse(verdict["start"], verdict["end"]))

    # runs when at least one interval has a verdict, even if others failed: the champion is guarded
    # on the verdicts there are (a failed interval has none, like one whose labels have not come)
    @mlflow_task(on_success_callback=ALERT_ON_RESULT, pool=REGISTRY_POOL, trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS)
    def guard(verdicts: list[dict]) -> dict:
        """The automatic rollback: when `@champion` trails its shadow (the previous champion) on the live metric
        by more than `monitoring.rollback_margin` in the last `monitoring.rollback_intervals` labelled
        intervals, `@champion` moves back (`monitoring.rollback: auto`) and an alert goes out."""
        from include.moves import guard_champion

        return guard_champion(settings(), get_current_context()["run_id"])

    # a candidate under staged rollout (promotion.strategy shadow or canary): promoted or retired
    # once its labelled live rows decide; after guard, in the same one-slot pool
    @mlflow_task(on_success_callback=ALERT_ON_RESULT, pool=REGISTRY_POOL, trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS)
    def rollout(verdicts: list[dict]) -> dict:
        """A challenger under staged rollout (`promotion.strategy: shadow | canary`, alias `@candidate`):
        promoted or retired once its labelled live rows decide."""
        from include.rollout import rollout_step

        return rollout_step(settings(), get_current_context()["run_id"])

    @task(trigger_rule=TriggerRule.ONE_FAILED, retries=0, on_failure_callback=[])
    def intervals_failed() -> None:
        """A leaf that fails the run when an interval failed: guard succeeding must not turn the
        run green (Airflow judges a run by its leaves). The failed task already sent its alert."""
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException("an interval of this run failed to score or to be checked for drift: see the failed score/drift task")

    # a teardown: it runs last whatever happened, and its own state does not decide the run's
    @task(inlets=[CURATED], outlets=[MONITOR_BACKLOG])
    def catch_up() -> int:
        """Wakes monitor again when curated events arrived after this run's trigger time: Airflow
        gives them to the next asset-triggered run, and this makes sure one comes."""
        from airflow.sdk.exceptions import AirflowSkipException

        ctx = get_current_context()
        after = ctx["dag_run"].run_after
        newer = list(ctx["inlet_events"][CURATED].after(after.isoformat()))
        if not newer:
            raise AirflowSkipException(f"no curated event after {after.isoformat()}")
        spans = [f"[{e.extra.get('start')}, {e.extra.get('end')})" for e in newer]
        log.info("%d curated event(s) after %s: %s; monitor runs again for them", len(newer), after.isoformat(), ", ".join(spans))
        ctx["outlet_events"][MONITOR_BACKLOG].extra = {"after": after.isoformat(), "curated_events": len(newer)}
        return len(newer)

    # one score and one drift check per interval: queued ingest events are not merged
    # a mapped task does not take its docs from the function as a plain one does
    scored = score.override(doc_md=score.function.__doc__).expand(span=window())
    verdicts = drift.override(doc_md=drift.function.__doc__).expand(scored=scored)
    reports = report.override(doc_md=report.function.__doc__).expand(verdict=verdicts)
    guarded = guard(verdicts)
    staged = rollout(verdicts)
    guarded >> staged
    failed = [scored, verdicts, reports] >> intervals_failed()
    [staged, reports, failed] >> catch_up().as_teardown()


monitor()
