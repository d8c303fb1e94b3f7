"""Champion moves that cannot half-happen, against the real MLflow server.

Each test builds its own registered model with bare versions (no trained model is needed to move
an alias) and drives ``include.moves``' promote / rollback / guard the way their tasks do.
The crash test runs a promotion in a real subprocess that is SIGKILLed between two of its writes,
then retries it here, as Airflow would retry the task.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from include.champion import champion_history, plan_move, previous_champion, record_move, recorded_move, rollback_plan, set_champion
from tests.conftest import ROOT
from tests.integration.conftest import task_states, xcom_value

pytestmark = pytest.mark.integration

RUN_ID = "manual__promote-under-test"


def _model(project, client, versions: int, champion: int) -> None:
    """``versions`` bare versions of the project's model; ``champion`` is @champion with history [champion]."""
    from include import registry

    run = client.create_run(registry.experiment_id(project.name))
    client.create_registered_model(project.name)
    for _ in range(versions):
        client.create_model_version(project.name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    set_champion(project.name, champion, [champion])


def _state(project, client) -> tuple[int, list[int]]:

    return int(client.get_model_version_by_alias(project.name, "champion").version), champion_history(project.name)


# the child patches MlflowClient so that the process kills itself (SIGKILL: no cleanup, no
# finally, as when a worker's machine dies) right before the write named by its first argument
CHILD = """
import json, os, signal, sys
from mlflow import MlflowClient
from include.config import load_settings
from include.moves import promote

point, run_id = sys.argv[1], sys.argv[2]

def kill_before(method, hit):
    original = getattr(MlflowClient, method)
    def patched(self, *args):
        if hit(*args):
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, *args)
    setattr(MlflowClient, method, patched)

if point == "history":
    kill_before("set_registered_model_tag", lambda name, key, value: key == "driftloop.champion_history")
elif point == "alias":
    kill_before("set_registered_model_alias", lambda name, alias, version: alias == "champion")
elif point == "applied":
    kill_before("set_registered_model_tag", lambda name, key, value: key.startswith("driftloop.move.") and json.loads(value).get("applied"))
promote(load_settings(), {"version": 2}, {"better": True, "champion_version": 1, "reason": "v2 is better"}, run_id)
print("not killed")
"""


@pytest.mark.parametrize("point", ["history", "alias", "applied"])
def test_a_promotion_killed_between_its_writes_is_completed_by_the_retry(project_factory, mlflow_client, point):
    from include.errors import RegistryError
    from include.moves import promote

    project = project_factory(f"kill_{point}")
    _model(project, mlflow_client, versions=2, champion=1)
    env = {**os.environ, "DRIFTLOOP_CONFIG": str(project.config), "PYTHONPATH": f"{ROOT}:{ROOT / 'plugins'}"}
    child = subprocess.run([sys.executable, "-c", CHILD, point, RUN_ID], env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert child.returncode == -signal.SIGKILL, child.stdout + child.stderr[-3000:]

    plan = recorded_move(project.name, RUN_ID)
    assert plan is not None and plan["applied"] is False  # the plan is written before anything moves
    champion, history = _state(project, mlflow_client)
    if point == "alias":
        # killed between the two writes: the history is one move ahead of the alias, and readers
        # go by the alias (no shadow for v1, no "rollback" forward to v2)
        assert (champion, history) == (1, [1, 2])
        assert previous_champion(project.name, 1) is None
        with pytest.raises(RegistryError, match="no earlier champion"):
            rollback_plan(project.name, None)

    retried = promote(project.settings, {"version": 2}, {"better": True, "champion_version": 1, "reason": "v2 is better"}, RUN_ID)
    assert retried["promoted"] is True and retried["champion"] == 2
    assert _state(project, mlflow_client) == (2, [1, 2])  # alias and history agree
    assert previous_champion(project.name, 2) == 1  # so v1 shadows v2
    assert recorded_move(project.name, RUN_ID)["applied"] is True
    assert mlflow_client.get_model_version(project.name, "2").tags["driftloop.decision"] == "promoted"

    again = promote(project.settings, {"version": 2}, {"better": True, "champion_version": 1, "reason": "v2 is better"}, RUN_ID)
    assert again == retried and _state(project, mlflow_client) == (2, [1, 2])  # no second move


def test_a_promotion_is_refused_when_the_champion_moved_since_the_comparison(project_factory, mlflow_client):
    """v2 was compared with v1, then someone rolled forward to v3 (say during the approval wait):
    promoting v2 now would undo their move."""
    from include.champion import ChampionMoved
    from include.moves import promote, rollback

    project = project_factory("moved")
    _model(project, mlflow_client, versions=3, champion=1)
    rollback(project.settings, 3, "manual__meanwhile")
    assert _state(project, mlflow_client) == (3, [1, 3])
    with pytest.raises(ChampionMoved, match=r"@champion is v3 now, but this promote to v2 was decided when it was v1"):
        promote(project.settings, {"version": 2}, {"better": True, "champion_version": 1, "reason": "v2 beats v1"}, RUN_ID)
    assert _state(project, mlflow_client) == (3, [1, 3])
    assert "driftloop.decision" not in mlflow_client.get_model_version(project.name, "2").tags
    # a cleared re-run refuses the same way (nothing was applied)
    with pytest.raises(ChampionMoved):
        promote(project.settings, {"version": 2}, {"better": True, "champion_version": 1, "reason": "v2 beats v1"}, RUN_ID)


def test_an_unapplied_rollback_plan_is_not_reported_as_rolled_back(project_factory, mlflow_client):
    """A guard's rollback plan (v2 -> v1) recorded, then @champion moved to v3 before it was
    applied: the retried guard leaves v3 and says it did not roll back."""
    from include.moves import guard_champion

    project = project_factory("stale")
    _model(project, mlflow_client, versions=3, champion=1)
    set_champion(project.name, 2, [1, 2])
    plan = plan_move(project.name, "rollback", 1, 2, "v2 trails its shadow v1", [1])
    plan["verdicts"] = ["20260209T000000Z__20260216T000000Z"]
    record_move(project.name, "manual__guard", plan)
    set_champion(project.name, 3, [1, 2, 3])

    result = guard_champion(project.settings, "manual__guard")
    assert result["rolled_back"] is False and result["mode"] == "stale" and result["champion"] == 3
    assert "not rolled back" in result["reason"]
    assert _state(project, mlflow_client) == (3, [1, 2, 3])
    assert "driftloop.demoted" not in mlflow_client.get_model_version(project.name, "2").tags


@pytest.mark.parametrize("applied", [True, False])
def test_a_guard_record_from_before_move_plans_is_finished_on_a_cleared_run(project_factory, mlflow_client, applied):
    """Guard records written before move plans named the target ``champion`` (no ``to``, no
    ``action``): clearing such a run after the upgrade finishes or reports it, never a KeyError."""
    from include.moves import guard_champion

    project = project_factory(f"legacy_guard_{applied}")
    _model(project, mlflow_client, versions=2, champion=1)
    set_champion(project.name, 1 if applied else 2, [1] if applied else [1, 2])
    old = {"degraded": True, "rolled_back": True, "from": 2, "champion": 1, "history": [1], "verdicts": [], "reason": "v2 trails v1"}
    mlflow_client.set_registered_model_tag(
        project.name, "driftloop.move.manual__old_guard", json.dumps({**old, "applied": True} if applied else old)
    )

    result = guard_champion(project.settings, "manual__old_guard")
    assert result["rolled_back"] is True and result["champion"] == 1 and result["from"] == 2
    assert result["reason"] == "v2 trails v1"
    assert _state(project, mlflow_client) == (1, [1])
    assert recorded_move(project.name, "manual__old_guard")["applied"] is True


def test_recorded_move_says_none_only_for_a_missing_model(project_factory, monkeypatch):
    """ "No such model" means nothing was recorded; a server that does not answer is an error the
    task must retry, not a licence to move the champion again."""
    from mlflow.exceptions import MlflowException
    from services import free_port

    project = project_factory("transient")
    assert recorded_move(project.name, RUN_ID) is None  # the model does not exist yet
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with pytest.raises(MlflowException):
        recorded_move(project.name, RUN_ID)


def test_rollback_dag_keeps_credentials_out_of_links(project_factory, mlflow_client, mlflow_server, monkeypatch):
    """The rollback DAG against a tracking URI that carries a user and password: the move is made,
    and neither the result (XCom) nor the MLflow button carries the credentials."""
    project = project_factory("creds")
    _model(project, mlflow_client, versions=2, champion=1)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.replace("http://", "http://alice:pw-4kq9z@"))
    dr = project.run("rollback", {"version": 2})
    assert dr.state == "success", task_states(dr)
    assert _state(project, mlflow_client) == (2, [1, 2])
    result = xcom_value(dr, "move_champion")
    assert result["mlflow_url"] == f"{mlflow_server}/#/models/{project.name}/versions/2"
    assert xcom_value(dr, "move_champion", key="_link_MlflowLink") == result["mlflow_url"]
    assert "pw-4kq9z" not in json.dumps(result)


def test_pools_are_created_with_one_slot(airflow_db):
    from airflow.models.pool import Pool

    from driftloop_airflow import POOLS

    for name in POOLS:
        assert Pool.get_pool(name).slots == 1, name


def test_retention_archives_old_versions_but_never_the_champion_its_predecessor_or_an_alias_holder(project_factory, mlflow_client):
    """Eight versions, keep 2: v7 and v8 are the newest; v4 is champion after v2 (its shadow), v5
    holds an alias (a version under rollout). v1, v3 and v6 are archived: tagged, their aliases
    gone, their artifacts and runs kept; a second pass archives nothing more."""
    from include.moves import retain

    project = project_factory("retain", registry={"keep": 2})
    _model(project, mlflow_client, versions=8, champion=2)
    set_champion(project.name, 4)  # history [2, 4]
    mlflow_client.set_registered_model_alias(project.name, "candidate", "5")
    mlflow_client.set_registered_model_alias(project.name, "old", "3")
    done = retain(project.settings, "2026-03-01T00:00:00+00:00 (manual__x)")
    assert done == {"kind": "retention", "archived": [1, 3, 6], "keep": 2}
    for v in range(1, 9):
        tags = mlflow_client.get_model_version(project.name, str(v)).tags
        assert ("driftloop.archived" in tags) is (v in (1, 3, 6)), v
    assert (
        mlflow_client.get_model_version(project.name, "3")
        .tags["driftloop.archived"]
        .startswith("2026-03-01T00:00:00+00:00 (manual__x): beyond registry.keep=2")
    )
    assert set(mlflow_client.get_registered_model(project.name).aliases) == {"champion", "candidate"}  # "old" went with v3
    assert _state(project, mlflow_client) == (4, [2, 4])
    archived = mlflow_client.get_model_version(project.name, "1")
    assert archived.status == "READY" and mlflow_client.get_run(archived.run_id).info.lifecycle_stage == "active"  # nothing deleted
    assert retain(project.settings, "later")["archived"] == []
    # an archived version is still a version a rollback may name
    assert rollback_plan(project.name, 1) == (1, [2, 4, 1])
