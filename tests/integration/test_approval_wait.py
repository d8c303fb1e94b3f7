"""The approval step's wait, under dag.test(): a bounded wait that ends in Reject, and a champion
moved during the wait that the promotion will not undo.

dag.test() leaves a human-in-the-loop task waiting (state ``awaiting_input``) until something
outside answers it. Here a thread plays the outside world: once ``approval`` waits, it reads the
deadline Airflow recorded, optionally moves ``@champion`` as a person would meanwhile, records an
answer (or none), moves the deadline to the past and runs the real scheduler's timeout sweep
(``SchedulerJobRunner.check_awaiting_input_timeouts``), which on Airflow 3.3 applies the answer or
the operator's default. Only the clock is skipped: the deadline is the one the task set.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.conftest import alerts_for, stable_weeks, task_states, week

pytestmark = pytest.mark.integration


class Outside(threading.Thread):
    """Waits for retrain's ``approval`` to wait, then: ``meanwhile()``, ``answer`` (None: no
    answer), and the deadline passes."""

    def __init__(self, answer: str | None, meanwhile=None) -> None:
        super().__init__(daemon=True)
        self.answer, self.meanwhile = answer, meanwhile
        self.deadline: datetime | None = None
        self.waiting_since: datetime | None = None
        self.error: BaseException | None = None
        self.subject: str | None = None
        self.body: str | None = None  # what Required Actions shows

    def run(self) -> None:
        try:
            self._run()
        except BaseException as err:  # reported by the test, which asserts self.error is None
            self.error = err

    def _run(self) -> None:
        from airflow.jobs.job import Job
        from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
        from airflow.models.hitl import HITLDetail
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from airflow.utils.state import TaskInstanceState

        stop = time.monotonic() + 600
        while time.monotonic() < stop:
            with create_session() as session:
                ti = (
                    session.query(TaskInstance)
                    .filter_by(dag_id="retrain", task_id="approval", state=TaskInstanceState.AWAITING_INPUT)
                    .one_or_none()
                )
                if ti is not None and ti.trigger_timeout is not None:
                    break
            time.sleep(0.5)
        else:
            raise TimeoutError("approval never waited for input")
        self.waiting_since, self.deadline = datetime.now(UTC), ti.trigger_timeout
        with create_session() as session:
            self.subject, self.body = session.get(HITLDetail, ti.id).subject, session.get(HITLDetail, ti.id).body
        if self.meanwhile is not None:
            self.meanwhile()
        with create_session() as session:
            ti = session.get(TaskInstance, ti.id)
            if self.answer is not None:
                detail = session.get(HITLDetail, ti.id)
                detail.chosen_options, detail.params_input = [self.answer], {}
                detail.responded_at = datetime.now(UTC)
                detail.responded_by = {"id": "admin", "name": "admin"}
            ti.trigger_timeout = datetime.now(UTC) - timedelta(seconds=1)
        SchedulerJobRunner(job=Job()).check_awaiting_input_timeouts()


@pytest.fixture(scope="module")
def project(project_factory):
    # min_improvement -1: every challenger counts as better, so every run asks for approval
    project = project_factory(promotion__mode="approval", promotion__approval_timeout="2H", promotion__min_improvement=-1.0)
    project.land(stable_weeks(3))
    assert project.ingest(week(0)[0], week(3)[0]).state == "success"
    return project


def test_an_unanswered_approval_rejects_the_challenger_after_the_configured_wait(project, mlflow_client):
    outside = Outside(answer=None)
    outside.start()
    dr = project.retrain(week(2)[0], reason="initial", window="14D")
    outside.join(timeout=60)
    assert outside.error is None, outside.error
    # the deadline the task set is promotion.approval_timeout (2H) after it began to wait, not 24H
    waited = outside.deadline - outside.waiting_since
    assert timedelta(hours=1, minutes=55) < waited <= timedelta(hours=2), waited
    # the person asked reads the challenger's model card: the comparison, its checks, the folds
    assert outside.subject == "Promote the challenger to champion?"
    card = mlflow_client.get_model_version(project.name, "1").description
    assert outside.body.startswith(f"# {project.name} v1\n")
    for line in ("## Comparison on the same out-of-time rows", "| challenger v1 (its last-fold model) |", "## Checks"):
        assert line in outside.body, (line, outside.body[:2000])
    assert card.split("\n")[0] == outside.body.split("\n")[0]
    assert dr.state == "success", task_states(dr)
    states = task_states(dr)
    assert states["approval"] == "success" and states["promote"] == "skipped", states
    assert mlflow_client.get_model_version_by_alias(project.name, "challenger").version == "1"
    assert not mlflow_client.get_registered_model(project.name).aliases.get("champion")


def test_a_champion_moved_during_the_approval_wait_is_not_undone(project, mlflow_client, alert_hook):
    """v2 is compared with "no champion"; while it waits for approval an operator makes v1 champion
    by hand. Approved afterwards, the promotion refuses to replace v1: the task fails at once
    (no retries), says why, and alerts."""
    from include.moves import rollback

    outside = Outside(answer="Approve", meanwhile=lambda: rollback(project.settings, 1, "manual__during-approval"))
    outside.start()
    dr = project.retrain(week(3)[0], reason="manual", window="14D")
    outside.join(timeout=60)
    assert outside.error is None, outside.error
    assert dr.state == "failed"
    states = task_states(dr)
    assert states["approval"] == "success" and states["promote"] == "failed", states
    assert mlflow_client.get_model_version_by_alias(project.name, "champion").version == "1"
    sent = alerts_for(alert_hook, dr)
    assert [(a["kind"], a["task_id"]) for a in sent] == [("failure", "promote")]
    assert "@champion is v1 now" in sent[0]["text"]
    assert sent[0]["try_number"] == 1  # failed on its first try: not retried
