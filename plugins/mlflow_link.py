"""An "MLflow" button on the tasks that write to MLflow (retrain's train, evaluate and promote,
monitor's drift, rollback's move): it opens the run or model version the task recorded.

``@mlflow_task`` is ``@task`` whose operator carries the link, so mapped tasks get it too (a mapped
task is rebuilt from its operator class on the worker: a link set on one instance would be lost).
When the task ends, the worker reads ``mlflow_url`` from its return value and stores the link as
an XCom (``_link_MlflowLink``) that the UI shows; a task that failed before returning gets a
disabled button. Kept light: it imports Airflow's task SDK, the standard provider and
``airflow.plugins_manager`` (1 ms more once the SDK is loaded; measured with ``time.perf_counter``).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from airflow.providers.standard.decorators.python import _PythonDecoratedOperator
from airflow.sdk import BaseOperatorLink, BaseXCom
from airflow.sdk.bases.decorator import task_decorator_factory

RESULT_KEY = "mlflow_url"


class MlflowLink(BaseOperatorLink):
    name = "MLflow"

    def get_link(self, operator, *, ti_key) -> str:
        result = BaseXCom.get_value(ti_key=ti_key, key="return_value")
        url = result.get(RESULT_KEY) if isinstance(result, dict) else None
        return url or ""


class ReportLink(BaseOperatorLink):
    """monitor's ``drift``: the interval's Evidently report, as an artifact of its MLflow run
    (``report_url`` in the return value; the ``report`` task draws it right after)."""

    name = "Evidently report"

    def get_link(self, operator, *, ti_key) -> str:
        result = BaseXCom.get_value(ti_key=ti_key, key="return_value")
        url = result.get("report_url") if isinstance(result, dict) else None
        return url or ""


class DashboardLink(BaseOperatorLink):
    """monitor's ``drift``: the model-health dashboard, the model's project in the Evidently UI
    (``dashboard_url`` in the return value; empty when no Evidently UI service is configured)."""

    name = "Model health"

    def get_link(self, operator, *, ti_key) -> str:
        result = BaseXCom.get_value(ti_key=ti_key, key="return_value")
        url = result.get("dashboard_url") if isinstance(result, dict) else None
        return url or ""


class MlflowTaskOperator(_PythonDecoratedOperator):
    """A TaskFlow task with the MLflow button."""

    operator_extra_links = (MlflowLink(),)


class MlflowReportTaskOperator(_PythonDecoratedOperator):
    """A TaskFlow task with the MLflow, the Evidently report and the model-health buttons."""

    operator_extra_links = (MlflowLink(), ReportLink(), DashboardLink())


def mlflow_task(python_callable=None, *, report: bool = False, **kwargs):
    """``@task`` (same arguments) for a task whose return value carries ``mlflow_url`` (and with
    ``report``, ``report_url`` and ``dashboard_url``)."""
    operator = MlflowReportTaskOperator if report else MlflowTaskOperator
    return task_decorator_factory(python_callable=python_callable, decorated_operator_class=operator, **kwargs)


class MlflowLinkPlugin(AirflowPlugin):
    name = "driftloop_mlflow_link"
    operator_extra_links = [MlflowLink(), ReportLink(), DashboardLink()]
