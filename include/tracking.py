"""Tracking: what MLflow keeps of each retrain and each monitored interval, and the model cards.

A training run carries the window, the folds and their metrics, the baseline, the dataset input,
the charts, the gate's profile and summary, the model and the comparison model; a monitoring run
carries the interval's verdict and its Evidently report. Every write is idempotent: runs carry the
Airflow run id (or the monitored interval) as tags and are looked up before a new one is made, and
a version is registered once per training run. The model card (``include.cards``) is the
registered version's description and the run's ``model_card.md``.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from include import cards, registry
from include.registry import client, experiment_id
from include.storage import Window

if TYPE_CHECKING:
    from include.config import Settings

log = logging.getLogger(__name__)


COMPARISON_MODEL = "comparison_model"


# a training run's artifact: its rows' out-of-time scores and targets (monitoring's reference)
MONITORING_REFERENCE = "monitoring/reference.parquet"


# a monitoring run's artifact: the interval's Evidently report
REPORT_ARTIFACT = "evidently/drift.html"
# and the drift timeline: drift share and live metric of every interval so far
TIMELINE_ARTIFACT = "charts/drift_over_time.png"


class TrainingRun(TypedDict):
    """An Airflow run's training run in MLflow (``find_training_run``)."""

    run_id: str
    version: int | None  # None: the attempt died before it registered a version
    run: object  # the MLflow ``Run``


def find_training_run(experiment: str, airflow_run_id: str) -> TrainingRun | None:
    """The training run of this Airflow run, if an earlier attempt started one.

    Any status counts: a worker that died after ``registry.log_model`` registered the version leaves its
    run RUNNING or FAILED, and its retry must reuse that version rather than register another.
    Such a run is marked FINISHED here, since everything it logged is complete. A run that
    registered nothing (the attempt died before ``registry.log_model``, for example with MLflow down) comes
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
            return TrainingRun(run_id=run.info.run_id, version=int(versions[0].version), run=run)
    if runs:  # newest first
        return TrainingRun(run_id=runs[0].info.run_id, version=None, run=runs[0])
    return None


def finish_registration(name: str, version: int, tags: dict[str, str]) -> None:
    """Tags a new version and points ``@challenger`` at it. Safe to repeat: a retried task that
    finds its run already registered calls it again to complete what a crash may have cut short."""
    c = client()
    for key, value in tags.items():
        c.set_model_version_tag(name, str(version), key, value)
    c.set_registered_model_alias(name, registry.CHALLENGER, str(version))
    log.info("registered %s version %d as @%s", name, version, registry.CHALLENGER)


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
        # model's (whose integer inputs registry.log_model declares as doubles): noise in the log
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
        registry.log_model(comparison_model, COMPARISON_MODEL, example, settings.model.task, estimator)
        info = registry.log_model(model, "model", example, settings.model.task, estimator, registered_model_name=settings.name)
        version = int(info.registered_model_version)
    finish_registration(settings.name, version, {k: tags[k] for k in VERSION_TAGS})
    return {"run_id": run.info.run_id, "version": version}


def write_card(facts: dict) -> str:
    """Stores a model card: its facts and Markdown on the training run, and the Markdown (within
    MLflow's limit) as the registered version's description. Each write replaces the last.

    Returns:
        The description written (what the approval step shows).
    """
    from include import cards

    c = client()
    c.log_dict(facts["run_id"], facts, cards.FACTS_ARTIFACT)
    c.log_text(facts["run_id"], cards.render(facts), cards.CARD_ARTIFACT)
    text = cards.description(facts)
    c.update_model_version(facts["name"], str(facts["version"]), description=text)
    return text


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


def monitoring_reference(version: registry.VersionInfo):
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


def profile_uri(version: registry.VersionInfo) -> str:
    """Where a version's gate profile (of its training window) is logged."""
    return f"runs:/{version.run_id}/gate/profile.json"


def champion_profile(name: str) -> dict | None:
    """The gate profile of the champion's training window, or None when there is no champion."""
    champion = registry.alias_version(name, registry.CHAMPION)
    if champion is None:
        return None
    import mlflow

    return mlflow.artifacts.load_dict(profile_uri(champion))


def log_monitoring_run(settings: Settings, window, verdict: dict) -> str:
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
    # the run's description in the MLflow UI: the verdict in a sentence
    tags["mlflow.note.content"] = monitoring_note(settings, verdict)
    run_id = existing[0].info.run_id if existing else None
    name = f"monitor {window.start:%Y-%m-%d} .. {window.end:%Y-%m-%d}"
    with mlflow.start_run(run_id=run_id, experiment_id=exp_id, run_name=name, tags=None if run_id else tags) as run:
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


def monitoring_note(settings: Settings, verdict: dict) -> str:
    """A monitoring run's description (Markdown): what a reviewer wants first from the verdict."""
    metric = settings.model.metric
    drifted = ", ".join(verdict.get("drifted") or []) or "none"
    lines = [
        f"**{'Drift' if verdict['drift'] else 'No drift'}** in [{verdict['start']}, {verdict['end']}) under champion "
        f"v{verdict['model_version']}: {verdict['drifted_columns']} drifted feature(s), share {verdict['drift_share']:.2f} "
        f"(drift at {settings.monitoring.drift_share}); drifted: {drifted}.",
    ]
    if verdict.get("live_metric") is not None:
        shadow = verdict.get("shadow_metric")
        beside = f"; shadow v{verdict['shadow_version']}: {shadow:.4f}" if shadow is not None else ""
        lines.append(f"Live {metric} on {verdict.get('labelled_rows', 0)} labelled rows: {verdict['live_metric']:.4f}{beside}.")
    else:
        lines.append(f"No live {metric} yet: no labelled rows in the interval.")
    lines.append(f"Evidently report: `{REPORT_ARTIFACT}`; drift over time: `{TIMELINE_ARTIFACT}`.")
    return "\n\n".join(lines)


def log_timeline(run_id: str, png: bytes) -> None:
    """Attaches the drift timeline (every verdict up to this interval) to a monitoring run, so the
    latest run shows the whole story (replacing an earlier one on a re-run)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(TIMELINE_ARTIFACT).name
        path.write_bytes(png)
        client().log_artifact(run_id, str(path), str(Path(TIMELINE_ARTIFACT).parent))


def log_report(run_id: str, report_html: str) -> None:
    """Attaches an interval's Evidently report to its monitoring run (replacing an earlier one)."""
    client().log_text(run_id, report_html, REPORT_ARTIFACT)


def card_facts(settings: Settings, version: int, run) -> cards.CardFacts:
    """A new version's card facts, read back from its training run (what an auditor can read too)."""
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    metric = settings.model.metric
    baseline = tags.get("driftloop.baseline")
    return cards.CardFacts(
        name=settings.name,
        version=version,
        run_id=run.info.run_id,
        run_url=registry.run_url(run.info.run_id),
        task=params.get("task", settings.model.task),
        metric=metric,
        estimator=params.get("estimator", settings.model.estimator),
        params={k.removeprefix("model."): v for k, v in params.items() if k.startswith("model.")},
        # a version registered outside driftloop has none of its tags: its card says what is known
        window_start=tags.get("driftloop.window_start", "unknown"),
        window_end=tags.get("driftloop.window_end", "unknown"),
        rows=int(params.get("rows", 0)),
        reason=tags.get("driftloop.reason", "unknown"),
        trigger=retrain_trigger(settings, tags.get("driftloop.airflow_run_id", "")),
        airflow_run_id=tags.get("driftloop.airflow_run_id", ""),
        data_digest=tags.get("driftloop.data_digest", "unknown"),
        config_digest=tags.get("driftloop.config_digest", "unknown"),
        code_version=tags.get("driftloop.code_version", "unknown"),
        gate=run_artifact_dict(run.info.run_id, "gate/summary.json"),
        folds=run_artifact_dict(run.info.run_id, "cv/folds.json") or [],
        cv_mean=metrics.get(f"cv_{metric}_mean"),
        baseline=json.loads(baseline) if baseline else None,
        baseline_cv_mean=metrics.get(f"baseline_cv_{metric}_mean"),
        decision=None,
    )


def retrain_trigger(settings: Settings, airflow_run_id: str) -> str | None:
    """In words, what started a drift retrain: the drifted intervals drift_watch answered with it,
    each a link to its Evidently report when MLflow has a UI (None for other retrains, or before
    drift_watch recorded them)."""
    from include.monitoring import drift_state

    verdicts, triggers = drift_state(settings)
    by_key = {Window.parse(v["start"], v["end"]).key: v for v in verdicts}

    def said(key: str) -> str:
        window = Window.from_key(key)
        span = f"{window.start:%Y-%m-%d} .. {window.end:%Y-%m-%d}"
        verdict = by_key.get(key)
        if verdict is None:
            return span
        # each interval links to its Evidently report, on its monitoring run
        report = registry.artifact_url(verdict["mlflow_run_id"], REPORT_ARTIFACT) if verdict.get("mlflow_run_id") else None
        return f"{f'[{span}]({report})' if report else span} (drift share {verdict['drift_share']:.2f})"

    for trigger in triggers:
        if trigger["retrain_run_id"] == airflow_run_id:
            return "drifted intervals " + ", ".join(said(key) for key in trigger["verdicts"])
    return None


def update_card(settings: Settings, trained: dict, **facts) -> str:
    """Adds ``facts`` (comparison, decision) to the version's card and writes it again; returns
    its description (``write_card``)."""
    run_id = trained.get("run_id") or registry.get_version(settings.name, trained["version"]).run_id
    stored = run_artifact_dict(run_id, cards.FACTS_ARTIFACT)
    if stored is None:
        stored = card_facts(settings, trained["version"], registry.client().get_run(run_id))
    return write_card({**stored, **facts})
