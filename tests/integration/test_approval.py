"""retrain with ``promotion.mode: approval``: a better challenger goes through the human approval
task before ``promote``.

dag.test() would wait for an answer to the ApprovalOperator (state ``awaiting_input``) for ever;
``mark_success_pattern="approval"`` marks that one task as approved so the run can go on, which is
what a human pressing "Approve" in the UI does to the task's state.
"""

from __future__ import annotations

import pytest

from tests.integration.conftest import stable_weeks, task_states, week

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def project(project_factory):
    project = project_factory(promotion__mode="approval")
    project.land(stable_weeks(2))
    assert project.ingest(week(0)[0], week(2)[0]).state == "success"
    return project


def test_better_challenger_waits_for_approval_then_is_promoted(project, mlflow_client):
    assert project.settings.promotion.mode == "approval"
    dr = project.retrain(week(2)[0], reason="initial", window="14D", mark_success_pattern="approval")
    assert dr.state == "success", task_states(dr)
    states = task_states(dr)
    assert states["route"] == "success"
    assert states["approval"] == "success"  # routed to the human step (here: marked approved)
    assert states["promote"] == "success"

    assert mlflow_client.get_model_version_by_alias(project.name, "champion").version == "1"
    assert mlflow_client.get_model_version(project.name, "1").tags["driftloop.decision"] == "promoted"


def test_no_approval_is_asked_when_the_challenger_is_not_better(project, mlflow_client):
    """The same window again: no out-of-time rows lie after the champion's window, so the
    challenger cannot be shown better; the human is not asked and the champion stays."""
    dr = project.retrain(week(2)[0], reason="manual", window="14D", mark_success_pattern="approval")
    assert dr.state == "success", task_states(dr)
    states = task_states(dr)
    assert states["approval"] == "skipped"
    assert states["promote"] == "success"

    assert mlflow_client.get_model_version_by_alias(project.name, "champion").version == "1"
    assert mlflow_client.get_model_version_by_alias(project.name, "challenger").version == "2"
    assert mlflow_client.get_model_version(project.name, "2").tags["driftloop.decision"] == "rejected"
