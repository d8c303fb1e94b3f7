"""
### retrain

Trains a challenger on the window `[end - window, end)` (or `[start, end)`) and promotes it when it
beats the champion.

1. `window`: from the run conf / form (`end`, `window` or `start`, `reason`), or the scheduled time.
2. `gate`: the data-quality gate on the window's labelled curated rows.
3. `train`: time-based cross-validation, a fit on the whole window, an MLflow run (per-fold
   `cv_<metric>`, dataset input, fold chart, gate profile) and a new registered version with the
   alias `challenger`. A re-run of the same Airflow run reuses its version.
4. `evaluate`: the challenger's last-fold model and `@champion` are scored on the same
   out-of-time rows (none of which either trained on).
5. `approval` (only with `promotion.mode: approval` and a better challenger): a human approves in
   the UI (Required Actions) within `promotion.approval_timeout` (default 24H); unanswered, the
   challenger is rejected.
6. `promote`: `@champion` moves only when the challenger is better (and beats the baseline, and
   passes the fairness and business checks when set), or no champion exists, and only while
   `@champion` is still the version the challenger was compared with (else the task fails, without
   retries, and alerts: re-run retrain to compare with the current champion). With
   `promotion.strategy: shadow | canary` a better challenger becomes `@candidate` instead, and
   monitor's `rollout` task promotes or retires it on live rows. The version's description (its
   model card) says which, and why.
7. `retain`: versions beyond `registry.keep` (default 10) are archived (tag `driftloop.archived`,
   aliases removed, artifacts kept), never the champion, the previous champion or a version under
   rollout (`@candidate`).

Faults (MLflow or storage down, a killed worker) are retried; bad data and a wrong run conf fail at
once. `promote` runs in the one-slot pool `driftloop_registry`, with every other move of
`@champion`.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Param, dag, get_current_context, task

from driftloop_airflow import (
    ALERT_ON_RESULT,
    DEFAULT_ARGS,
    REGISTRY_POOL,
    TAGS,
    fail_without_retry,
    settings,
    start_date,
    time_param,
    trigger_schedule,
)
from include.config import PromotionSettings, load_dag_settings
from mlflow_link import mlflow_task

CONFIG = load_dag_settings()


class PromotionApproval(ApprovalOperator):
    """The approval step: waits ``promotion.approval_timeout`` for a human, read from the config
    when the task runs (like ``promotion.mode``), then takes its default, Reject. On Airflow 3.3 the
    scheduler applies the default when the wait runs out (the task waits in ``awaiting_input``)."""

    def execute(self, context):
        self.response_timeout = settings().promotion.approval_timeout
        return super().execute(context)


@dag(
    dag_id="retrain",
    schedule=trigger_schedule(CONFIG.schedule.retrain),
    start_date=start_date(CONFIG.schedule.start_date),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=[*TAGS, "retrain"],
    doc_md=__doc__,
    params={
        "end": time_param("excluded (default: now)", "Window end"),
        "window": Param(
            None,
            type=["null", "string"],
            pattern=r"^\s*\d+\s*[DdHhMmWw]\s*$",
            title="Window length",
            description="e.g. 90D, 12H or 2W (default: training.window)",
        ),
        "start": time_param("instead of a length; a drift retrain starts at the drift's onset", "Window start"),
        "reason": Param(
            "manual",
            type="string",
            enum=["manual", "schedule", "drift", "initial"],
            title="Reason",
            description="why this retrain runs (recorded on the MLflow run and the version)",
        ),
    },
)
def retrain():
    @task
    def window() -> dict:
        """The training window: `[end - window, end)`, or `[start, end)`, from the run conf / form, or the
        scheduled time; and the reason."""
        from include.windows import NoWindow, retrain_window

        ctx = get_current_context()
        params, run = ctx["params"], ctx["dag_run"]
        scheduled_end = ctx.get("data_interval_end") if run.run_type == "scheduled" else None
        with fail_without_retry(NoWindow):  # no end, an unreadable one, or a length like "90 days"
            span = retrain_window(params, scheduled_end, run.run_after, settings(check_metric=True).training.window)
        reason = "schedule" if run.run_type == "scheduled" else params.get("reason") or "manual"
        return {**span.as_dict(), "reason": reason}

    @task
    def gate(span: dict) -> dict:
        """The data-quality gate on the window's labelled curated rows (with the champion's learned tolerances);
        fails without retries on bad data or fewer than `training.min_rows` rows."""
        from include.retraining import gate_window
        from include.storage import Window

        with fail_without_retry():  # the gate failed, or too few labelled rows
            return gate_window(settings(), Window.parse(span["start"], span["end"]))

    # cross-validation and a fit on the whole window: minutes on a few million rows
    @mlflow_task(execution_timeout=timedelta(hours=3))
    def train(span: dict, gated: dict) -> dict:
        """Time-based cross-validation (with a dummy baseline per fold), a fit on the whole window, an MLflow run
        (fold metrics and charts, dataset, gate profile, model card) and a new registered version
        `@challenger`. A retry reuses what an earlier attempt of this run registered. The **MLflow**
        button opens the run."""
        from include.retraining import train_challenger
        from include.storage import Window

        run_id = get_current_context()["run_id"]
        return train_challenger(settings(), Window.parse(span["start"], span["end"]), span["reason"], run_id, gated)

    @mlflow_task(execution_timeout=timedelta(hours=1))
    def evaluate(span: dict, trained: dict) -> dict:
        """The challenger's last-fold model, the baseline and `@champion` scored on the same out-of-time rows,
        with every check (baseline, fairness, business); the result is in the model card."""
        from include.retraining import evaluate_challenger
        from include.storage import Window

        return evaluate_challenger(settings(), Window.parse(span["start"], span["end"]), trained)

    @task.branch
    def route(comparison: dict) -> str:
        """To `approval` when `promotion.mode` is `approval` and the challenger is better, else straight to
        `promote`."""
        needs_human = settings().promotion.mode == "approval" and comparison["better"]
        return "approval" if needs_human else "promote"

    approval = PromotionApproval(
        task_id="approval",
        doc_md=(
            "With `promotion.mode: approval`: a human approves or rejects the better challenger under **Required Actions**, "
            "reading its model card and the comparison; unanswered within `promotion.approval_timeout`, it is rejected."
        ),
        subject="Promote the challenger to champion?",
        # the challenger's model card (Markdown): the comparison on the same out-of-time rows,
        # every check, the folds, the data and code it came from
        body="{{ ti.xcom_pull(task_ids='evaluate')['card'] or ti.xcom_pull(task_ids='evaluate')['reason'] }}",
        defaults="Reject",
        # the config's value replaces this default when the task runs; passed here too because an
        # operator built with execution_timeout but no response_timeout turns the former (from
        # DEFAULT_ARGS, for the short write before the wait) into the latter
        response_timeout=PromotionSettings().approval_timeout,
    )

    @mlflow_task(trigger_rule="none_failed_min_one_success", on_success_callback=ALERT_ON_RESULT, pool=REGISTRY_POOL)
    def promote(trained: dict, comparison: dict) -> dict:
        """Moves `@champion` to the challenger when it is better (or starts its staged rollout), only while
        `@champion` is the version it was compared with; records why in the version's model card. The
        **MLflow** button opens the champion's version."""
        from include.moves import promote as move_alias

        with fail_without_retry():  # @champion moved since the comparison: a person must look
            return move_alias(settings(), trained, comparison, get_current_context()["run_id"])

    # archives versions beyond registry.keep once the decision is taken, whatever it was; a
    # teardown: it runs last whatever happened, and its own state does not decide the run's (a
    # leaf that succeeded after a failed promote would turn the run green)
    @task(pool=REGISTRY_POOL)
    def retain() -> dict:
        """Archives versions beyond `registry.keep` (never the champion, the previous champion or `@candidate`);
        a teardown, so it runs whatever the outcome."""
        from include.moves import retain as archive_old_versions

        ctx = get_current_context()
        return archive_old_versions(settings(), f"{ctx['dag_run'].run_after.isoformat()} ({ctx['run_id']})")

    span = window()
    trained = train(span, gate(span))
    comparison = evaluate(span, trained)
    decision = route(comparison)
    decision >> approval
    promoted = promote(trained, comparison)
    decision >> promoted
    approval >> promoted
    promoted >> retain().as_teardown()


retrain()
