"""The MLflow adapter: training runs, registered versions, aliases, monitoring runs.

MLflow reads ``MLFLOW_TRACKING_URI`` itself; nothing here sets it. ``configure_mlflow`` bounds the
client's HTTP waits from the config (called where a task loads its settings). Every write is
idempotent: runs carry the Airflow run id (or the monitored interval) as tags and are looked up
before a new one is made, and a version is registered once per training run. A tracking URI may
carry a user and password (``http://user:pass@host``): ``strip_userinfo`` takes them out of every
link and log line made here. Links point at ``MLFLOW_PUBLIC_URL`` when it is set.
"""

from __future__ import annotations

import contextlib
import json
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
HISTORY_TAG = "driftloop.champion_history"
COMPARISON_MODEL = "comparison_model"
# a training run's artifact: its rows' out-of-time scores and targets (monitoring's reference)
MONITORING_REFERENCE = "monitoring/reference.parquet"
# a monitoring run's artifact: the interval's Evidently report
REPORT_ARTIFACT = "evidently/drift.html"


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
        if _missing(err):
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


def find_training_run(experiment: str, airflow_run_id: str) -> dict | None:
    """The training run of this Airflow run, if an earlier attempt started one.

    Any status counts: a worker that died after ``log_model`` registered the version leaves its
    run RUNNING or FAILED, and its retry must reuse that version rather than register another.
    Such a run is marked FINISHED here, since everything it logged is complete. A run that
    registered nothing (the attempt died before ``log_model``, for example with MLflow down) comes
    back with ``"version": None``: the retry continues that run instead of starting a second one.
    """
    c = client()
    exp_id = experiment_id(experiment)
    runs = c.search_runs(
        [exp_id],
        filter_string=f"tags.`driftloop.airflow_run_id` = '{airflow_run_id}'",
        order_by=["attributes.start_time DESC"],
    )
    for run in runs:
        versions = c.search_model_versions(f"run_id = '{run.info.run_id}'")
        if versions:
            if run.info.status != "FINISHED":
                c.set_terminated(run.info.run_id, "FINISHED")
                run = c.get_run(run.info.run_id)
            return {"run_id": run.info.run_id, "version": int(versions[0].version), "run": run}
    if runs:  # newest first
        return {"run_id": runs[0].info.run_id, "version": None, "run": runs[0]}
    return None


BASE_REQUIREMENTS = ("mlflow", "scikit-learn", "pandas", "numpy", "scipy", "skops")


def pip_requirements(estimator: str) -> list[str]:
    """What loading a model of ``estimator`` needs, pinned at the installed versions: the base
    packages plus the estimator's own (``include.estimators``). Named explicitly: MLflow's own
    inference loads the model in a subprocess and costs seconds."""
    from importlib.metadata import version

    from include.estimators import get

    return [f"{pkg}=={version(pkg)}" for pkg in dict.fromkeys((*BASE_REQUIREMENTS, *get(estimator).requirements))]


def _log_sklearn(model, name: str, example, task: str, estimator: str, registered_model_name: str | None = None):
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


def finish_registration(name: str, version: int, tags: dict[str, str]) -> None:
    """Tags a new version and points ``@challenger`` at it. Safe to repeat: a retried task that
    finds its run already registered calls it again to complete what a crash may have cut short."""
    c = client()
    for key, value in tags.items():
        c.set_model_version_tag(name, str(version), key, value)
    c.set_registered_model_alias(name, CHALLENGER, str(version))
    log.info("registered %s version %d as @%s", name, version, CHALLENGER)


VERSION_TAGS = (
    "driftloop.reason",
    "driftloop.window_start",
    "driftloop.window_end",
    "driftloop.airflow_run_id",
    "driftloop.cv_mean",
    "driftloop.estimator",
)


def version_tags(run) -> dict[str, str]:
    """The tags a training run's version carries: its window, reason, Airflow run and CV mean."""
    return {k: run.data.tags[k] for k in VERSION_TAGS if k in run.data.tags}


def training_dataset(frame, name: str, target: str):
    """The training rows as MLflow's dataset input, described without a Python step per cell.

    ``mlflow.data.from_pandas`` as such costs minutes at a million rows (MLflow 3.17): its schema
    is inferred value by value over the whole frame, and its digest calls ``type`` on every cell
    (``compute_pandas_digest`` maps the whole frame, though it hashes only the first 10,000 rows).
    Here the digest hashes every row with pandas' vectorised hash (any changed value changes it),
    and the schema is MLflow's own inference on the first 1,000 rows plus each column's first
    missing value, so that a column with a gap deep in the window is still not ``required``.
    The dataset's profile (rows, elements) is MLflow's, from the whole frame.
    """
    import hashlib

    import mlflow
    import pandas as pd

    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    digest = hashlib.sha256(hashed.tobytes() + "\x1f".join(map(str, frame.columns)).encode()).hexdigest()[:16]
    dataset = mlflow.data.from_pandas(frame, name=name, targets=target, digest=digest)
    gaps = frame.columns[frame.isna().any().to_numpy()]
    sample = pd.concat([frame.head(1000), *(frame.loc[[frame[col].isna().idxmax()]] for col in gaps)])
    with warnings.catch_warnings():
        # MLflow's hint about integer columns concerns the dataset's recorded schema here, not the
        # model's (whose integer inputs _log_sklearn declares as doubles): noise in the log
        warnings.filterwarnings("ignore", message=r"\s*Hint: Inferred schema contains integer", category=UserWarning)
        dataset.schema = mlflow.data.from_pandas(sample, targets=target, digest=digest).schema  # a cached_property: writable
    return dataset


def log_training_run(
    settings,
    window,
    reason: str,
    airflow_run_id: str,
    cv,
    model,
    comparison_model,
    frame,
    gate_profile: dict,
    figures: dict[str, bytes | None],
    resume_run_id: str | None = None,
    gate: dict | None = None,
) -> dict:
    """Logs one retrain as an MLflow run and registers its model as a new version.

    Args:
        settings: the full Settings.
        window: the training window.
        reason: why the retrain ran (schedule, manual, drift, initial).
        airflow_run_id: the Airflow run, for idempotency and lineage.
        cv: the cross-validation result.
        model: the pipeline fitted on the whole window (registered).
        comparison_model: the last fold's pipeline (trained before the out-of-time rows).
        frame: the training rows (logged as the dataset input).
        gate_profile: the window's profile; the gate uses it once this version is champion.
        figures: PNG pictures by artifact path (``cv/folds.png``, ``cv/calibration.png``); None
            values are left out.
        resume_run_id: the run an earlier attempt of this Airflow run started and never finished
            registering: it is continued (metrics it logged already are not logged twice).
        gate: the gate's result on the window (``retraining.gate_window``), kept for the card.

    Returns:
        ``{"run_id", "version"}``.
    """
    import mlflow
    import pandas as pd

    from include import provenance

    data, metric = settings.data, settings.model.metric
    exp_id = experiment_id(settings.name)
    tags = {
        "driftloop.reason": reason,
        "driftloop.window_start": window.start.isoformat(),
        "driftloop.window_end": window.end.isoformat(),
        "driftloop.airflow_run_id": airflow_run_id,
        "driftloop.cv_mean": f"{cv.mean:.6f}",
        "driftloop.estimator": settings.model.estimator,
        # where the last fold's out-of-time rows start: the comparison with the champion uses them
        "driftloop.valid_start": cv.folds[-1].valid_start.isoformat(),
        # the last fold's dummy baseline, which the comparison rows are also scored with
        "driftloop.baseline": json.dumps(cv.baseline, sort_keys=True),
        "driftloop.config_digest": provenance.config_digest(settings),
        "driftloop.code_version": provenance.code_version(),
    }
    if resume_run_id is None:
        start = {"experiment_id": exp_id, "run_name": f"retrain {window.end:%Y-%m-%d} ({reason})", "tags": tags}
    else:
        start = {"run_id": resume_run_id, "tags": tags}
        log.info("continuing MLflow run %s, which an earlier attempt started", resume_run_id)
    with mlflow.start_run(**start) as run:
        c = client()
        logged = set(c.get_run(run.info.run_id).data.metrics) if resume_run_id else set()

        def steps(key: str) -> set[int]:
            return {m.step for m in c.get_metric_history(run.info.run_id, key)} if key in logged else set()

        mlflow.log_params(
            {
                "task": settings.model.task,
                "metric": metric,
                "estimator": settings.model.estimator,
                "folds": settings.training.folds,
                "window": str(settings.training.window),
                "rows": len(frame),
                "features": ",".join(data.features),
                **{f"model.{k}": v for k, v in settings.model.params.items()},
            }
        )
        for key, means in fold_metrics(cv, metric).items():
            done = steps(key)
            for step, value in means["folds"].items():
                if step not in done:
                    mlflow.log_metric(key, value, step=step)
            for suffix in ("mean", "std"):
                if means.get(suffix) is not None and f"{key}_{suffix}" not in logged:
                    mlflow.log_metric(f"{key}_{suffix}", means[suffix])
        dataset = training_dataset(frame, f"{settings.name}-{window.key}", data.target)
        mlflow.log_input(dataset, context="training")
        mlflow.set_tag("driftloop.data_digest", dataset.digest)
        mlflow.log_dict(cv.summary(), "cv/folds.json")
        mlflow.log_dict(gate_profile, "gate/profile.json")
        if gate is not None:
            mlflow.log_dict(gate, "gate/summary.json")
        with tempfile.TemporaryDirectory() as tmp:
            for artifact, png in figures.items():
                if png is not None:
                    folder, _, filename = artifact.rpartition("/")
                    path = Path(tmp) / filename
                    path.write_bytes(png)
                    mlflow.log_artifact(str(path), folder or None)
            if cv.oot is not None:
                # what monitoring compares an interval's scores and labels with
                path = Path(tmp) / MONITORING_REFERENCE.rsplit("/", 1)[-1]
                pd.DataFrame({"prediction": cv.oot, "target": frame[data.target].to_numpy()}).to_parquet(path, index=False)
                mlflow.log_artifact(str(path), MONITORING_REFERENCE.rsplit("/", 1)[0])
        example = frame[data.features].head(5)
        estimator = settings.model.estimator
        _log_sklearn(comparison_model, COMPARISON_MODEL, example, settings.model.task, estimator)
        info = _log_sklearn(model, "model", example, settings.model.task, estimator, registered_model_name=settings.name)
        version = int(info.registered_model_version)
    finish_registration(settings.name, version, {k: tags[k] for k in VERSION_TAGS})
    return {"run_id": run.info.run_id, "version": version}


def write_card(facts: dict) -> None:
    """Stores a model card: its facts and Markdown on the training run, and the Markdown (within
    MLflow's limit) as the registered version's description. Each write replaces the last."""
    from include import cards

    c = client()
    c.log_dict(facts["run_id"], facts, cards.FACTS_ARTIFACT)
    c.log_text(facts["run_id"], cards.render(facts), cards.CARD_ARTIFACT)
    c.update_model_version(facts["name"], str(facts["version"]), description=cards.description(facts))


def run_artifact_dict(run_id: str, path: str) -> dict | list | None:
    """A JSON artifact of a run, or None when the run has none there."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.artifacts.load_dict(f"runs:/{run_id}/{path}")
    except (MlflowException, OSError):
        return None


def fold_metrics(cv, metric: str) -> dict[str, dict]:
    """What a training run logs per fold: ``{key: {"folds": {fold: value}, "mean", "std"}}`` for
    the primary metric (``cv_<metric>``), the baseline's (``baseline_cv_<metric>``, mean only) and
    each secondary metric (``cv_<name>``; one that equals the primary scorer is left out)."""
    import numpy as np

    out = {f"cv_{metric}": {"folds": {f.number: f.score for f in cv.folds}, "mean": cv.mean, "std": cv.std}}
    if cv.baseline_mean is not None:
        out[f"baseline_cv_{metric}"] = {"folds": {f.number: f.baseline for f in cv.folds}, "mean": cv.baseline_mean}
    names = dict.fromkeys(k for f in cv.folds for k in f.metrics)
    for name in names:
        key = f"cv_{name}"
        if key in out:
            continue
        values = {f.number: f.metrics[name] for f in cv.folds if f.metrics.get(name) is not None}
        if values:
            out[key] = {"folds": values, "mean": float(np.mean(list(values.values()))), "std": float(np.std(list(values.values())))}
    return out


ARCHIVED_TAG = "driftloop.archived"
ROLLOUT_TAG = "driftloop.rollout"


def rollout_record(name: str) -> dict | None:
    """The running rollout (``include.rollout.Rollout``), or None: the model tag, and only while
    ``@candidate`` still points at its version (a tag left by a half-finished end counts as none)."""
    tags = model_tags(name)
    record = json.loads(tags[ROLLOUT_TAG]) if tags.get(ROLLOUT_TAG) else None
    if record is None:
        return None
    candidate = alias_version(name, CANDIDATE)
    return record if candidate is not None and candidate.version == record["version"] else None


def start_rollout(name: str, record: dict) -> None:
    """Points ``@candidate`` at the record's version and stores the record (idempotent)."""
    c = client()
    c.set_registered_model_alias(name, CANDIDATE, str(record["version"]))
    c.set_registered_model_tag(name, ROLLOUT_TAG, json.dumps(record, sort_keys=True))
    c.set_model_version_tag(name, str(record["version"]), "driftloop.decision", record["strategy"])
    log.info("%s v%d under %s rollout (@%s)", name, record["version"], record["strategy"], CANDIDATE)


def end_rollout(name: str, version: int, outcome: str, reason: str) -> None:
    """Ends the rollout of ``version``: its ``driftloop.rollout`` version tag says how (promoted,
    retired), ``@candidate`` and the model's record are removed (idempotent)."""
    c = client()
    c.set_model_version_tag(name, str(version), ROLLOUT_TAG, f"{outcome}: {reason}")
    if outcome != "promoted":
        c.set_model_version_tag(name, str(version), "driftloop.decision", outcome)
    candidate = alias_version(name, CANDIDATE)
    if candidate is not None and candidate.version == version:
        c.delete_registered_model_alias(name, CANDIDATE)
    tags = c.get_registered_model(name).tags or {}
    if tags.get(ROLLOUT_TAG) and json.loads(tags[ROLLOUT_TAG])["version"] == version:
        c.delete_registered_model_tag(name, ROLLOUT_TAG)
    log.info("%s v%d: rollout ended, %s (%s)", name, version, outcome, reason)


def archive_versions(name: str, keep: int, protected: set[int], when: str) -> list[int]:
    """Archives the versions of ``name`` beyond the newest ``keep`` (``promotion.to_archive``):
    each is tagged ``driftloop.archived`` with why and when, and loses its aliases; its run and
    artifacts stay, so it can still be loaded, compared or rolled back to. The holders of
    ``@champion`` and ``@candidate`` (a version under rollout) are protected as well as
    ``protected``. Idempotent: archived versions are passed over.

    Returns:
        The versions archived now.
    """
    from include.promotion import to_archive

    c = client()
    found = c.search_model_versions(f"name = '{name}'")
    aliases = c.get_registered_model(name).aliases or {}
    held = {int(v) for alias, v in aliases.items() if alias in (CHAMPION, CANDIDATE)}
    archived = {int(v.version) for v in found if ARCHIVED_TAG in (v.tags or {})}
    chosen = to_archive([int(v.version) for v in found], keep, protected | held, archived)
    for version in chosen:
        c.set_model_version_tag(
            name, str(version), ARCHIVED_TAG, f"{when}: beyond registry.keep={keep} (the newest {keep} and the champions stay)"
        )
        for alias in c.get_model_version(name, str(version)).aliases or []:
            c.delete_registered_model_alias(name, alias)
        log.info("%s v%d archived (registry.keep=%d)", name, version, keep)
    return chosen


def metric_key(text: str) -> str:
    """``text`` as a part of an MLflow metric name (letters, digits, ``_ - . /`` and spaces)."""
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", str(text))[:200] or "_"


def log_comparison(run_id: str, metric: str, result: dict) -> None:
    """Records the challenger-versus-champion comparison on the training run."""
    c = client()
    c.log_metric(run_id, f"holdout_{metric}", result["challenger_score"])
    if result.get("champion_score") is not None:
        c.log_metric(run_id, f"champion_holdout_{metric}", result["champion_score"])
    if result.get("baseline_score") is not None:
        c.log_metric(run_id, f"baseline_holdout_{metric}", result["baseline_score"])
    c.log_metric(run_id, "holdout_rows", result["rows"])
    fair, worth = result.get("fairness"), result.get("business")
    for role, prefix in (("challenger", ""), ("champion", "champion_")):
        if fair and fair.get(role):
            if fair[role]["gap"] is not None:
                c.log_metric(run_id, f"{prefix}fairness_gap", fair[role]["gap"])
            for group, value in fair[role]["by_group"].items():
                if value is not None:
                    c.log_metric(run_id, f"{prefix}fairness_{fair[role]['metric']}.{metric_key(group)}", value)
        if worth and worth.get(role) and worth[role]["value"] is not None:
            c.log_metric(run_id, f"{prefix}business_{worth[role]['metric']}", worth[role]["value"])
    c.set_tag(run_id, "driftloop.decision", "promote" if result["better"] else "keep_champion")
    c.set_tag(run_id, "driftloop.compared_with", str(result.get("champion_version")))


def champion_history(name: str) -> list[int]:
    tags = client().get_registered_model(name).tags or {}
    return json.loads(tags.get(HISTORY_TAG, "[]"))


def settled_history(history: list[int], champion: int | None) -> list[int]:
    """The champion history up to where ``@champion`` is: its entries after the champion's last
    one belong to a move that was written but never completed (a worker killed between the
    history and the alias writes of ``set_champion``); the move's retry completes them. With the
    champion absent from the history (an alias set by hand in MLflow) it is returned whole."""
    if champion is None or champion not in history:
        return list(history)
    return history[: len(history) - history[::-1].index(champion)]


def previous_champion(name: str, champion: int) -> int | None:
    """The champion before ``champion`` in the champion history (the shadow), or None."""
    history = settled_history(champion_history(name), champion)
    if len(history) < 2 or history[-1] != champion or history[-2] == champion:
        return None
    return history[-2]


def set_champion(name: str, version: int, history: list[int] | None = None) -> list[int]:
    """Records the champion history (a model tag), then points ``@champion`` at ``version``.

    History first: a crash between the two writes leaves the history one move ahead of the alias,
    which the move's retry completes and every reader tolerates (``settled_history``), while the
    other order would leave a champion the history does not know (no shadow, no rollback).

    Args:
        name: the registered model.
        version: the new champion.
        history: the history to store; by default the settled one with ``version`` appended.

    Idempotent: what is already in place is not written again.
    Returns the history.
    """
    c = client()
    stored = champion_history(name)
    current = alias_version(name, CHAMPION)
    if history is None:
        settled = settled_history(stored, current.version if current else None)
        history = settled if settled[-1:] == [version] else [*settled, version]
    if stored != history:
        c.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
    c.set_model_version_tag(name, str(version), "driftloop.champion", "true")
    if current is None or current.version != version:
        c.set_registered_model_alias(name, CHAMPION, str(version))
        log.info("%s@%s -> version %d (history %s)", name, CHAMPION, version, history)
    return history


def _move_tag(airflow_run_id: str) -> str:
    from include.storage import safe_name

    return "driftloop.move." + safe_name(airflow_run_id)


def model_tags(name: str) -> dict[str, str]:
    """The registered model's tags; empty when the model does not exist (any other MLflow error,
    the server down say, propagates, so the task fails and Airflow retries it)."""
    from mlflow.exceptions import MlflowException

    try:
        return client().get_registered_model(name).tags or {}
    except MlflowException as err:
        if _missing(err):
            return {}
        raise


def _missing(err) -> bool:
    """Whether an MlflowException says the registered model (or version, or alias) is not there."""
    return getattr(err, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND")


def recorded_move(name: str, airflow_run_id: str) -> dict | None:
    """What an Airflow run already planned or did to ``@champion`` (promote or rollback), if anything.

    A cleared and re-run ``promote`` or ``rollback`` task returns this instead of moving the alias
    a second time (a rollback re-run would otherwise step back once more). Only "no such
    registered model" means "nothing recorded"; any other MLflow error (the server down, a
    timeout) propagates, so the task fails and Airflow retries it.
    """
    value = model_tags(name).get(_move_tag(airflow_run_id))
    return upgraded_move(json.loads(value)) if value else None


def upgraded_move(record: dict) -> dict:
    """A move record as the current code reads it. Records written before move plans had no
    ``action`` and ``reason``, and a guard's rollback kept its target as ``champion``, not ``to``;
    a run cleared after an upgrade must still find what it did. A promote's decision record
    (``promoted``/``champion``, no ``history``) is read as it is."""
    if "history" not in record:
        return record
    record = dict(record)
    if "to" not in record:
        record["to"] = record["champion"]
    record.setdefault("action", "rollback")
    record.setdefault("reason", f"{record['action']} to v{record['to']}")
    record.setdefault("applied", False)
    return record


def record_move(name: str, airflow_run_id: str, result: dict) -> dict:
    client().set_registered_model_tag(name, _move_tag(airflow_run_id), json.dumps(result, sort_keys=True))
    return result


def rollback_plan(name: str, requested: int | None) -> tuple[int, list[int]]:
    """Where a rollback takes ``@champion`` and the champion history afterwards.

    Without ``requested`` the current champion is dropped from the (settled) history and the one
    before it returns; a requested version is appended like any promotion.

    Raises:
        RegistryError: no earlier champion exists, or the requested version does not exist.
    """
    from mlflow.exceptions import MlflowException

    from include.errors import RegistryError

    current = alias_version(name, CHAMPION)
    history = settled_history(champion_history(name), current.version if current else None)
    if requested is not None:
        try:
            get_version(name, requested)
        except MlflowException as err:
            if not _missing(err):
                raise
            raise RegistryError(f"{name} has no version {requested}") from None
        return int(requested), [*history, int(requested)]
    remaining = history[:-1] if current is not None and history and history[-1] == current.version else history
    if not remaining:
        raise RegistryError(f"{name}: no earlier champion to roll back to (champion history {history})")
    return remaining[-1], remaining


def monitoring_reference(version: VersionInfo):
    """A version's training rows as monitoring compares with them: ``prediction`` (each row's
    out-of-time score from the last CV fold's model, NaN outside that fold) and ``target``; None for a version
    logged before driftloop kept them."""
    import mlflow
    import pandas as pd
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(artifact_uri=f"runs:/{version.run_id}/{MONITORING_REFERENCE}", dst_path=tmp)
        except (MlflowException, OSError) as err:
            log.info("v%d has no %s (%s)", version.version, MONITORING_REFERENCE, err)
            return None
        return pd.read_parquet(local)


def profile_uri(version: VersionInfo) -> str:
    """Where a version's gate profile (of its training window) is logged."""
    return f"runs:/{version.run_id}/gate/profile.json"


def champion_profile(name: str) -> dict | None:
    """The gate profile of the champion's training window, or None when there is no champion."""
    champion = alias_version(name, CHAMPION)
    if champion is None:
        return None
    import mlflow

    return mlflow.artifacts.load_dict(profile_uri(champion))


def log_monitoring_run(settings, window, verdict: dict) -> str:
    """One run per monitored interval in ``<name>-monitoring``; a re-run updates the same run."""
    import mlflow

    c = client()
    exp_id = experiment_id(f"{settings.name}-monitoring")
    existing = c.search_runs(
        [exp_id],
        filter_string=f"tags.`driftloop.start` = '{window.start.isoformat()}' and tags.`driftloop.end` = '{window.end.isoformat()}'",
    )
    tags = {
        "driftloop.start": window.start.isoformat(),
        "driftloop.end": window.end.isoformat(),
        "driftloop.drift": "true" if verdict["drift"] else "false",
        "driftloop.model_version": str(verdict["model_version"]),
    }
    run_id = existing[0].info.run_id if existing else None
    with mlflow.start_run(run_id=run_id, experiment_id=exp_id, run_name=f"monitor {window.key}", tags=None if run_id else tags) as run:
        mlflow.set_tags(tags)
        mlflow.log_metric("drift_share", verdict["drift_share"])
        mlflow.log_metric("drifted_columns", verdict["drifted_columns"])
        mlflow.log_metric("rows", verdict["rows"])
        if verdict.get("live_metric") is not None:
            mlflow.log_metric(settings.model.metric, verdict["live_metric"])
        for what in ("prediction_drift", "target_drift"):
            result = verdict.get(what) or {}
            mlflow.set_tag(f"driftloop.{what}", {True: "true", False: "false"}.get(result.get("drifted"), result.get("status", "n/a")))
            if result.get("score") is not None:
                mlflow.log_metric(f"{what}_score", result["score"])
        worth = verdict.get("business") or {}
        if worth.get("value") is not None:
            mlflow.log_metric(f"business_{worth['metric']}", worth["value"])
        if verdict.get("shadow_version") is not None:
            mlflow.set_tag("driftloop.shadow_version", str(verdict["shadow_version"]))
            if verdict.get("shadow_metric") is not None:
                mlflow.log_metric(f"shadow_{settings.model.metric}", verdict["shadow_metric"])
        mlflow.log_dict(verdict, "verdict.json")
        return run.info.run_id


def log_report(run_id: str, report_html: str) -> None:
    """Attaches an interval's Evidently report to its monitoring run (replacing an earlier one)."""
    client().log_text(run_id, report_html, REPORT_ARTIFACT)
