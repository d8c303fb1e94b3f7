"""The MLflow adapter: the client and its bounds, links, experiments, registered versions and
their aliases, tags, and saving and loading a model (skops, with driftloop's own trusted types).

Nothing here decides anything: what a training or monitoring run holds is ``include.tracking``'s,
who is champion and how a move is made safe is ``include.champion``'s. MLflow reads
``MLFLOW_TRACKING_URI`` itself; nothing here sets it. ``configure_mlflow`` bounds the client's HTTP
waits from the config (called where a task loads its settings). A tracking URI may carry a user
and password (``http://user:pass@host``): ``strip_userinfo`` takes them out of every link and log
line made here. Links point at ``MLFLOW_PUBLIC_URL`` when it is set.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
CANDIDATE = "candidate"  # a better challenger under staged rollout (promotion.strategy shadow or canary)


def _quiet() -> None:
    """Before MLflow is first imported: no telemetry (there may be no network), and MLflow's log
    records go through Python logging (the Airflow task log, with their real levels) instead of
    MLflow's own stderr handler, whose INFO lines Airflow shows as errors."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")


# once, at import: every MLflow import in driftloop happens after this module's (registry is the
# MLflow adapter; other modules reach MLflow through it)
_quiet()

_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/\s]*@")


def strip_userinfo(text: str) -> str:
    """``text`` with the ``user:password@`` part of every URL in it removed: a tracking URI such as
    ``http://user:pass@mlflow:5000`` becomes ``http://mlflow:5000``. For whatever becomes a link,
    a log line, an XCom value or an alert."""
    return _USERINFO.sub(r"\g<scheme>", text)


def configure_mlflow(mlflow_settings) -> None:
    """Bounds the MLflow client's HTTP waits from the config's ``mlflow`` section.

    MLflow reads these documented variables on every request, so setting them before the first
    request of a task is enough. Its defaults (120 s per request, 7 retries with exponential
    backoff) can hold a task for minutes on a server that is down; bounded, the task fails soon
    and Airflow's retries (with their own delay) take over. MLflow's "View run at <tracking URI>"
    line is turned off as well: it prints the URI as given, password included; driftloop logs
    the run's link itself (``run_url``).

    Args:
        mlflow_settings: the config's ``mlflow`` section (``http_timeout``, ``http_retries``).
    """
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(mlflow_settings.http_timeout)
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(mlflow_settings.http_retries)
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"


@contextlib.contextmanager
def _no_airflow_deprecations():
    """skops walks ``sys.modules`` to name each type's module when it saves or loads a model; inside
    an Airflow worker that touches every deprecated ``airflow.*`` module attribute and writes over a
    thousand warnings into the task log. They say nothing about the model."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"The `airflow\.", category=FutureWarning)
        warnings.filterwarnings("ignore", message=r".*airflow\..* is deprecated", category=DeprecationWarning)
        yield


class _StderrToLog:
    """A stderr that forwards lines to the module logger at INFO. MLflow prints its progress
    notes ("Created version '2' ...") to stderr, which Airflow's task log files as errors."""

    def __init__(self) -> None:
        self._buffer = ""

    def write(self, text: str) -> int:
        self._buffer += text
        *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            if line.strip():
                log.info("mlflow: %s", strip_userinfo(line.strip()))
        return len(text)

    def flush(self) -> None:
        if self._buffer.strip():
            log.info("mlflow: %s", strip_userinfo(self._buffer.strip()))
        self._buffer = ""


@contextlib.contextmanager
def _mlflow_notes_to_log():
    stream = _StderrToLog()
    try:
        with contextlib.redirect_stderr(stream):
            yield
    finally:
        stream.flush()


def client():
    from mlflow import MlflowClient

    return MlflowClient()


@dataclass(frozen=True)
class VersionInfo:
    """A registered version, with the training window and reason it was tagged with."""

    version: int
    run_id: str
    window_start: str | None
    window_end: str | None
    reason: str | None

    @classmethod
    def from_mlflow(cls, mv) -> VersionInfo:
        tags = mv.tags or {}
        return cls(
            int(mv.version), mv.run_id, tags.get("driftloop.window_start"), tags.get("driftloop.window_end"), tags.get("driftloop.reason")
        )

    def as_dict(self) -> dict:
        return {
            "version": self.version,
            "run_id": self.run_id,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "reason": self.reason,
        }


PUBLIC_URL_ENV = "MLFLOW_PUBLIC_URL"


def _ui_base() -> str | None:
    """The MLflow UI's base URL for links a person follows: ``MLFLOW_PUBLIC_URL`` when set (the
    workers may reach MLflow at a name no browser resolves, such as ``http://mlflow:5000``), else
    the tracking URI without credentials; None when neither is an HTTP server."""
    import mlflow

    uri = os.environ.get(PUBLIC_URL_ENV) or mlflow.get_tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return None
    return strip_userinfo(uri).rstrip("/")


def run_url(run_id: str) -> str | None:
    """The MLflow UI page of a run, when the tracking URI is an HTTP server (None otherwise)."""
    base = _ui_base()
    if base is None:
        return None
    run = client().get_run(run_id)
    return f"{base}/#/experiments/{run.info.experiment_id}/runs/{run_id}"


def artifact_url(run_id: str, path: str) -> str | None:
    """The MLflow UI page of one artifact of a run (its Artifacts tab, the file open), when the
    tracking URI is an HTTP server."""
    page = run_url(run_id)
    return f"{page}/artifacts/{path}" if page else None


def version_url(name: str, version: int | None) -> str | None:
    """The MLflow UI page of a registered model version, when the tracking URI is an HTTP server."""
    base = _ui_base()
    if version is None or base is None:
        return None
    return f"{base}/#/models/{name}/versions/{version}"


def experiment_id(name: str) -> str:
    """The id of experiment ``name``, created if missing."""
    c = client()
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            c.restore_experiment(exp.experiment_id)
        return exp.experiment_id
    from mlflow.exceptions import MlflowException

    try:
        return c.create_experiment(name)
    except MlflowException:
        # another task created it between the lookup and the create
        return c.get_experiment_by_name(name).experiment_id


def alias_version(name: str, alias: str) -> VersionInfo | None:
    """The version behind ``name@alias``, or None when the model or the alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return VersionInfo.from_mlflow(client().get_model_version_by_alias(name, alias))
    except MlflowException as err:
        if getattr(err, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        # a server with basic auth answers a user who is not an admin 403, not 404, for a version
        # of a model that does not exist: ask for the model itself, which says 404 when it is missing
        if getattr(err, "error_code", "") == "PERMISSION_DENIED" and not model_exists(name):
            return None
        raise


def model_exists(name: str) -> bool:
    """Whether registered model ``name`` exists (any other MLflow error propagates)."""
    from mlflow.exceptions import MlflowException

    try:
        client().get_registered_model(name)
    except MlflowException as err:
        if is_missing(err):
            return False
        raise
    return True


def get_version(name: str, version: int) -> VersionInfo:
    return VersionInfo.from_mlflow(client().get_model_version(name, str(version)))


def load_model(uri: str):
    """Loads a scikit-learn model from ``models:/...`` or ``runs:/...``.

    The skops file is opened with driftloop's own list of trusted types, not with the list stored
    in the model's MLmodel file (which a crafted artifact could widen). That is why this does not
    call ``mlflow.sklearn.load_model``, which since MLflow 3.17 also refuses every format unless
    MLFLOW_ALLOW_PICKLE_DESERIALIZATION=true.
    """
    import mlflow
    import skops.io
    import yaml

    from include.training import SKOPS_TRUSTED_TYPES

    with tempfile.TemporaryDirectory() as tmp:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp))
        flavor = yaml.safe_load((local / "MLmodel").read_text())["flavors"]["sklearn"]
        if flavor.get("serialization_format") != "skops":
            raise ValueError(f"{uri} is stored as {flavor.get('serialization_format')!r}; driftloop loads only skops models")
        with _no_airflow_deprecations():
            return skops.io.load(local / flavor["pickled_model"], trusted=SKOPS_TRUSTED_TYPES)


def try_load_model(uri: str, what: str):
    """``load_model``, or None (logged) when the model cannot be loaded: for optional models such
    as the shadow, whose absence must not stop the task."""
    from mlflow.exceptions import MlflowException

    try:
        return load_model(uri)
    except (MlflowException, ValueError, TypeError, OSError) as err:  # TypeError: skops' untrusted types
        log.warning("%s (%s) cannot be loaded (%s); going on without it", what, uri, err)
        return None


BASE_REQUIREMENTS = ("mlflow", "scikit-learn", "pandas", "numpy", "scipy", "skops")


def pip_requirements(estimator: str) -> list[str]:
    """What loading a model of ``estimator`` needs, pinned at the installed versions: the base
    packages plus the estimator's own (``include.estimators``). Named explicitly: MLflow's own
    inference loads the model in a subprocess and costs seconds."""
    from importlib.metadata import version

    from include.estimators import get

    return [f"{pkg}=={version(pkg)}" for pkg in dict.fromkeys((*BASE_REQUIREMENTS, *get(estimator).requirements))]


def log_model(model, name: str, example, task: str, estimator: str, registered_model_name: str | None = None):
    """Logs a fitted pipeline to the active run in skops format, with its signature, input
    example and pip requirements; with ``registered_model_name``, registers it as a new version."""
    import mlflow.sklearn
    from mlflow.models import infer_signature

    from include.training import SKOPS_TRUSTED_TYPES

    # integer columns are declared as doubles so a later batch with a missing value still fits
    example = example.astype({c: "float64" for c in example.columns if example[c].dtype.kind in "iu"})
    output = model.predict_proba(example) if task == "classification" else model.predict(example)
    with _no_airflow_deprecations(), _mlflow_notes_to_log():
        return mlflow.sklearn.log_model(
            model,
            name=name,
            signature=infer_signature(example, output),
            input_example=example,
            registered_model_name=registered_model_name,
            pyfunc_predict_fn="predict_proba" if task == "classification" else "predict",
            serialization_format="skops",
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
            pip_requirements=pip_requirements(estimator),
        )


def model_tags(name: str) -> dict[str, str]:
    """The registered model's tags; empty when the model does not exist (any other MLflow error,
    the server down say, propagates, so the task fails and Airflow retries it)."""
    from mlflow.exceptions import MlflowException

    try:
        return client().get_registered_model(name).tags or {}
    except MlflowException as err:
        if is_missing(err):
            return {}
        raise


def is_missing(err) -> bool:
    """Whether an MlflowException says the registered model (or version, or alias) is not there."""
    return getattr(err, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND")
