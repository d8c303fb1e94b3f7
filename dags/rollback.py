"""
### rollback

Moves `@champion` back to the previous champion, or to the version given in the run conf /
form (`{"version": N}`). The champion history is kept as a tag on the registered model. The move
is recorded before it is applied, so a retried task completes it; nothing to roll back to, an
unknown version, or a champion moved since the move was planned fail at once (no retries).
Runs in the one-slot pool `driftloop_registry`, with every other move of `@champion`.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context

from driftloop_airflow import DEFAULT_ARGS, REGISTRY_POOL, TAGS, fail_without_retry, settings, start_date
from include.config import load_dag_settings
from mlflow_link import mlflow_task

CONFIG = load_dag_settings()


@dag(
    dag_id="rollback",
    schedule=None,
    start_date=start_date(CONFIG.schedule.start_date),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=[*TAGS, "registry"],
    doc_md=__doc__,
    params={
        "version": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            title="Version",
            description="the registered version to make champion (default: the previous champion)",
        )
    },
)
def rollback():
    @mlflow_task(pool=REGISTRY_POOL)
    def move_champion() -> dict:
        """Moves `@champion` to the previous champion or to the form's `version`, recorded before it is applied.
        The **MLflow** button opens the new champion's version."""
        from include.moves import rollback as roll_back

        ctx = get_current_context()
        with fail_without_retry():  # nothing to roll back to, no such version, @champion moved meanwhile
            return roll_back(settings(), ctx["params"].get("version"), ctx["run_id"])

    move_champion()


rollback()
