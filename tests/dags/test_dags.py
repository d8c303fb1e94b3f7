"""DAG integrity: the bag imports, the ids and wiring of the contract, and light DAG files."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_IDS = {"ingest", "monitor", "drift_watch", "retrain", "rollback"}


@pytest.fixture(scope="module")
def bag():
    from airflow.models import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_no_import_errors(bag):
    assert bag.import_errors == {}


def test_the_contract_dag_ids(bag):
    assert set(bag.dag_ids) == DAG_IDS


def edges(dag):
    return {(up, t.task_id) for t in dag.tasks for up in t.upstream_task_ids}


@pytest.mark.parametrize(
    ("dag_id", "expected"),
    [
        (
            "ingest",
            {
                ("window", "gate"),
                ("window", "publish"),
                ("gate", "publish"),
                ("late_windows", "reingest_late"),
            },
        ),
        (
            "monitor",
            {
                ("window", "score"),
                ("score", "drift"),
                ("drift", "guard"),
                ("drift", "report"),
                ("score", "intervals_failed"),
                ("drift", "intervals_failed"),
                ("report", "intervals_failed"),
                ("drift", "rollout"),
                ("guard", "rollout"),
                ("rollout", "catch_up"),
                ("report", "catch_up"),
                ("intervals_failed", "catch_up"),
            },
        ),
        ("drift_watch", {("wait_for_drift", "trigger_retrain"), ("wait_for_drift", "mark_handled"), ("trigger_retrain", "mark_handled")}),
        (
            "retrain",
            {
                ("window", "gate"),
                ("window", "train"),
                ("gate", "train"),
                ("window", "evaluate"),
                ("train", "evaluate"),
                ("evaluate", "route"),
                ("route", "approval"),
                ("route", "promote"),
                ("approval", "promote"),
                ("train", "promote"),
                ("evaluate", "promote"),
                ("promote", "retain"),
            },
        ),
        ("rollback", set()),
    ],
)
def test_tasks_and_edges(bag, dag_id, expected):
    dag = bag.dags[dag_id]
    assert edges(dag) == expected
    assert {t for e in expected for t in e} <= set(dag.task_ids)


def test_tags_owner_retries_docs(bag):
    for dag in bag.dags.values():
        assert "driftloop" in dag.tags
        assert dag.doc_md and dag.dag_id in dag.doc_md
        for t in dag.tasks:
            assert t.owner == "driftloop"


def test_every_task_retries_faults(bag):
    """A storage or MLflow blip must not fail a window, a retrain or a rollback for good; bad data
    and broken configs fail at once all the same (fail_without_retry turns driftloop's own errors
    into AirflowFailException)."""
    # monitor's intervals_failed does no work: it only turns the run red when an interval failed
    reporters = {("monitor", "intervals_failed")}
    for dag in bag.dags.values():
        for t in dag.tasks:
            if (dag.dag_id, t.task_id) not in reporters:
                assert t.retries >= 1, (dag.dag_id, t.task_id)
    assert bag.dags["monitor"].get_task("intervals_failed").on_failure_callback == []  # the failed task alerted already
    assert bag.dags["ingest"].get_task("gate").retries >= 1
    assert bag.dags["retrain"].get_task("gate").retries >= 1
    assert bag.dags["rollback"].get_task("move_champion").retries >= 1


def test_every_task_has_an_execution_timeout(bag):
    from datetime import timedelta

    for dag in bag.dags.values():
        for t in dag.tasks:
            assert t.execution_timeout is not None and t.execution_timeout > timedelta(0), (dag.dag_id, t.task_id)
    default = bag.dags["retrain"].get_task("gate").execution_timeout
    assert bag.dags["retrain"].get_task("train").execution_timeout > default  # a fit takes longer


def test_approval_waits_a_bounded_time_then_rejects(bag):
    from datetime import timedelta

    approval = bag.dags["retrain"].get_task("approval")
    assert type(approval).__name__ == "PromotionApproval"  # reads promotion.approval_timeout when it runs
    assert approval.defaults == ["Reject"]
    assert approval.response_timeout == timedelta(hours=24)  # the config's default, until the task runs


# tasks that move an alias of the registered model (or write drift_watch's trigger state)
REGISTRY_TASKS = {
    ("retrain", "promote"),
    ("retrain", "retain"),
    ("monitor", "rollout"),
    ("monitor", "guard"),
    ("rollback", "move_champion"),
    ("drift_watch", "mark_handled"),
}


def test_pools_are_declared_and_alias_moves_share_the_registry_pool(bag):
    from driftloop_airflow import CURATED_POOL, POOLS, REGISTRY_POOL

    assert set(POOLS) == {CURATED_POOL, REGISTRY_POOL}
    pooled = {(dag.dag_id, t.task_id): t.pool for dag in bag.dags.values() for t in dag.tasks if t.pool != "default_pool"}
    assert set(pooled.values()) <= set(POOLS), pooled
    for key in REGISTRY_TASKS:
        assert pooled.get(key) == REGISTRY_POOL, key
    for key, pool in pooled.items():
        assert pool != REGISTRY_POOL or key in REGISTRY_TASKS, key
    # one slot each (as created): see test_pools_are_created_with_one_slot in tests/integration


def test_run_conf_params(bag):
    assert set(bag.dags["ingest"].params) == {"start", "end", "force", "accept", "reason"}
    assert set(bag.dags["monitor"].params) == {"start", "end"}
    assert set(bag.dags["retrain"].params) == {"end", "window", "start", "reason"}
    assert set(bag.dags["rollback"].params) == {"version"}


def test_monitor_runs_on_curated_and_drift_watch_on_verdicts(bag):
    from airflow.sdk import Asset

    assert bag.dags["ingest"].get_task("publish").outlets == [Asset(name="driftloop_curated", uri="x-driftloop://curated")]
    assert "driftloop_curated" in repr(bag.dags["monitor"].timetable.asset_condition)
    assert "driftloop_verdicts" in repr(bag.dags["drift_watch"].timetable.asset_condition)


def test_drift_sensor_is_rescheduling_with_timeout(bag):
    sensor = bag.dags["drift_watch"].get_task("wait_for_drift")
    assert type(sensor).__name__ == "DriftSensor"
    assert sensor.mode == "reschedule" and sensor.soft_fail and 0 < sensor.timeout <= 24 * 3600


def test_schedules_follow_the_config(tmp_path):
    """With the defaults, ingest runs daily over its data interval and retrain weekly."""
    from tests.conftest import write_config

    path = write_config(tmp_path, schedule={"ingest": "@daily", "retrain": "@weekly", "start_date": "2026-01-01", "catchup": True})
    code = (
        "from airflow.models import DagBag; b = DagBag(dag_folder='dags'); "
        "print(b.dags['ingest'].catchup, type(b.dags['ingest'].timetable).__name__, type(b.dags['retrain'].timetable).__name__, len(b.import_errors))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "DRIFTLOOP_CONFIG": str(path)},
        check=True,
    )
    assert out.stdout.split()[-4:] == ["True", "CronDataIntervalTimetable", "CronTriggerTimetable", "0"]


HEAVY = ("pandas", "sklearn", "mlflow", "great_expectations", "evidently", "matplotlib")


@pytest.mark.parametrize("dag_file", sorted(p.name for p in (ROOT / "dags").glob("*.py")))
def test_dag_files_do_not_import_heavy_libraries(dag_file):
    code = f"import sys, runpy; runpy.run_path(sys.argv[1]); print(' '.join(m for m in {HEAVY!r} if m in sys.modules) or 'light')"
    out = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "dags" / dag_file)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'plugins'}"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "light"


def test_dags_import_from_outside_the_checkout(tmp_path):
    """As DESIGN.md promises: Airflow pointed at the checkout from elsewhere, root on PYTHONPATH."""
    env = {
        "PATH": os.environ["PATH"],
        "AIRFLOW_HOME": str(tmp_path / "home"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "PYTHONPATH": str(ROOT),
    }
    code = "from airflow.models import DagBag; b = DagBag(); print(sorted(b.dag_ids), b.import_errors)"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == f"{sorted(DAG_IDS)} {{}}"


def test_mlflow_link_on_the_tasks_that_write_to_mlflow(bag):
    """The serialized DAG (what the API server and UI read) names the MLflow button and its XCom key."""
    from airflow.serialization.serialized_objects import DagSerialization

    expected = {
        "retrain": {"train", "evaluate", "promote"},
        "monitor": {"drift", "report", "guard", "rollout"},
        "rollback": {"move_champion"},
        "ingest": set(),
        "drift_watch": set(),
    }
    for dag_id, tasks in expected.items():
        linked = {t.task_id for t in bag.dags[dag_id].tasks if any(link.name == "MLflow" for link in t.operator_extra_links)}
        assert linked == tasks, dag_id
        encoded = DagSerialization.to_dict(bag.dags[dag_id])["dag"]["tasks"]
        for op in encoded:
            op = op["__var"]
            links = op.get("_operator_extra_links") or {}
            assert (links.get("MLflow") == "_link_MlflowLink") == (op["task_id"] in tasks), (dag_id, op["task_id"], links)
            # monitor's drift also links to the interval's Evidently report and the model-health dashboard
            report = (dag_id, op["task_id"]) == ("monitor", "drift")
            assert (links.get("Evidently report") == "_link_ReportLink") == report, (dag_id, op["task_id"], links)
            assert (links.get("Model health") == "_link_DashboardLink") == report, (dag_id, op["task_id"], links)
            assert set(links) <= {"MLflow", "Evidently report", "Model health", "Triggered DAG"}, links


@pytest.mark.parametrize("value", ["2026-01-05", "2026-01-05T00:00:00", "2026-01-05T00:00:00Z", "2026-01-05T06:30:00+02:00", None])
def test_time_params_take_dates_and_times_with_or_without_a_zone(bag, value):
    """The run conf's times as the contract allows them (no zone: UTC), the same on every machine:
    not a jsonschema "format", whose checking depends on optional packages being installed."""
    from airflow.sdk.definitions.param import ParamsDict

    for dag_id, key in (("ingest", "start"), ("ingest", "end"), ("monitor", "start"), ("retrain", "end")):
        params = ParamsDict(bag.dags[dag_id].params)
        params[key] = value
        params.validate()


@pytest.mark.parametrize("value", ["yesterday", "05/01/2026", "2026-1-5", "2026-01-05T25"])
def test_time_params_refuse_what_is_not_iso(bag, value):
    from airflow.sdk.definitions.param import ParamsDict
    from airflow.sdk.exceptions import ParamValidationError

    params = ParamsDict(bag.dags["ingest"].params)
    with pytest.raises(ParamValidationError, match="param start"):
        params["start"] = value


def test_monitor_wakes_itself_for_curated_events_that_came_during_a_run(bag):
    """Airflow 3.3 gives an asset-triggered run the events up to its trigger time only and clears
    the queue (apache/airflow#56050): catch_up is a teardown (the run's state is its other leaves')
    that reads curated events and emits the backlog asset monitor is also scheduled on."""
    dag = bag.dags["monitor"]
    catch_up = dag.get_task("catch_up")
    assert catch_up.is_teardown
    assert {a.uri for a in catch_up.inlets} == {"x-driftloop://curated"}
    assert {a.uri for a in catch_up.outlets} == {"x-driftloop://monitor-backlog"}
    assert {a.uri for a in dag.timetable.asset_condition.objects} == {
        "x-driftloop://curated",
        "x-driftloop://monitor-backlog",
    }


def test_every_dag_task_and_form_field_is_documented(bag):
    """What the Airflow UI shows a user: each DAG's and each task's docs (the task's Details tab),
    and a title and a description for each field of the trigger forms."""
    for dag in bag.dags.values():
        assert dag.doc_md and dag.doc_md.strip().startswith(f"### {dag.dag_id}"), dag.dag_id
        for task in dag.tasks:
            assert task.doc_md and len(task.doc_md.split()) >= 8, f"{dag.dag_id}.{task.task_id} has no docs"
        for name in dag.params:
            param = dag.params.get_param(name)
            assert param.schema.get("title") and param.description, f"{dag.dag_id} form field {name!r}: {param.dump()}"


def test_a_retrain_window_length_the_form_cannot_read_is_refused_there(bag):
    """A window length like "90 days" is refused by the trigger form (and the REST API), before a run exists."""
    from airflow.sdk.exceptions import ParamValidationError

    window = bag.dags["retrain"].params.get_param("window")
    assert window.resolve(value="90D") == "90D" and window.resolve(value=None) is None
    with pytest.raises(ParamValidationError, match="does not match"):
        window.resolve(value="90 days")
