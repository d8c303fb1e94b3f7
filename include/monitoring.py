"""Monitoring: score an interval with the champion, measure drift with Evidently against the
champion's training window, compute the live metric where labels exist, and keep a verdict.

The drift rule (``drift_decision``) and the trigger rule (``pending_drift``) are pure functions of
verdict records, unit-tested without Evidently or MLflow.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta

import pandas as pd

from include import charts, registry
from include.storage import Storage, Window, to_utc
from include.training import predict, score

log = logging.getLogger(__name__)


class NoChampion(LookupError):
    """There is no ``@champion`` yet, so there is nothing to score or compare against."""


def champion_or_raise(name: str) -> registry.VersionInfo:
    champion = registry.alias_version(name, registry.CHAMPION)
    if champion is None:
        raise NoChampion(f"registered model {name!r} has no @{registry.CHAMPION} yet; run the retrain DAG first")
    return champion


def with_labels(frame: pd.DataFrame, storage: Storage, data) -> pd.DataFrame:
    """The frame with labels filled in from ``data.labels`` (later-arriving labels) where missing."""
    if not data.labels or frame.empty:
        return frame
    labels = storage.read_labels(data.id, data.target, frame[data.id])
    if labels.empty:
        return frame
    merged = frame.drop(columns=[data.target], errors="ignore").merge(labels, on=data.id, how="left")
    if data.target in frame.columns:
        merged[data.target] = frame[data.target].to_numpy()
        fill = merged[data.target].isna()
        merged.loc[fill, data.target] = frame[[data.id]].merge(labels, on=data.id, how="left")[data.target].to_numpy()[fill.to_numpy()]
    return merged


def score_interval(settings, window: Window) -> dict:
    """Scores the interval's curated rows with ``@champion`` and stores one prediction per id.

    Re-running replaces the interval's predictions file, so predictions are never duplicated.

    Returns:
        ``{"rows", "model_version", "predictions", "live_metric", "labelled_rows"}``.

    Raises:
        NoChampion: no champion exists yet.
        ValueError: the interval has no curated rows.
    """
    data = settings.data
    storage = Storage.from_settings(settings)
    champion = champion_or_raise(settings.name)
    frame = storage.read_curated(window)
    if frame.empty:
        raise ValueError(f"no curated rows in [{window.start.isoformat()}, {window.end.isoformat()}): run ingest for this interval first")
    model = registry.load_model(f"models:/{settings.name}/{champion.version}")
    out = frame[[data.id, data.timestamp]].copy()
    out["prediction"] = predict(model, frame, data.features, settings.model.task)
    out["model_version"] = champion.version
    path = storage.write_parquet(out, storage.predictions_path(window))

    labelled = with_labels(frame, storage, data)
    live, n_labelled = None, 0
    if data.target in labelled.columns:
        labelled = labelled[labelled[data.target].notna()]
        n_labelled = len(labelled)
        if n_labelled:
            try:
                live = score(model, labelled, data.features, data.target, settings.model.metric)
            except ValueError as err:
                log.warning("live %s not computed: %s", settings.model.metric, err)
    log.info("scored %d rows with %s v%d; live %s = %s", len(out), settings.name, champion.version, settings.model.metric, live)
    return {"rows": len(out), "model_version": champion.version, "predictions": path, "live_metric": live, "labelled_rows": n_labelled}


def drift_decision(column_scores: dict[str, dict], drift_share: float) -> dict:
    """Dataset drift from per-column results: drifted when the share of drifted columns reaches
    ``drift_share`` (Evidently 0.7 has no dataset-drift flag of its own)."""
    drifted = sorted(c for c, r in column_scores.items() if r["drifted"])
    share = len(drifted) / len(column_scores) if column_scores else 0.0
    return {"drift": share >= drift_share, "drift_share": share, "drifted_columns": len(drifted), "drifted": drifted}


def evidently_drift(reference: pd.DataFrame, current: pd.DataFrame, data, drift_share: float):
    """Runs Evidently's data-drift preset on the feature columns.

    Returns:
        ``(column_scores, html)``: per column ``{"score", "threshold", "method", "drifted"}``, read
        by metric name and column, and the report's HTML.
    """
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=list(data.numeric), categorical_columns=list(data.categorical))
    cols = data.features
    snapshot = Report([DataDriftPreset(columns=cols, drift_share=drift_share)]).run(
        Dataset.from_pandas(current[cols], data_definition=definition),
        Dataset.from_pandas(reference[cols], data_definition=definition),
    )
    column_scores = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if not config.get("type", "").endswith(":ValueDrift"):
            continue
        column = config["column"]
        threshold = float(config.get("threshold") or 0.0)
        method = str(config.get("method") or "")
        value = float(metric["value"])
        # p-value tests drift when the value is below the threshold, distances when above
        is_p_value = "p_value" in method.lower() or "test" in method.lower()
        drifted = value < threshold if is_p_value else value >= threshold
        column_scores[column] = {"score": value, "threshold": threshold, "method": method, "drifted": drifted}
    html = snapshot.get_html_str(as_iframe=False)
    return column_scores, html


def reference_frame(settings, storage: Storage, champion: registry.VersionInfo) -> pd.DataFrame:
    """The champion's training window from curated storage, sampled to ``monitoring.reference_rows``."""
    window = Window.parse(champion.window_start, champion.window_end)
    frame = storage.read_curated(window)
    if frame.empty:
        raise ValueError(f"champion v{champion.version}'s training window {window.as_dict()} has no curated rows to compare with")
    limit = settings.monitoring.reference_rows
    return frame.sample(n=limit, random_state=0) if len(frame) > limit else frame


def check_drift(settings, window: Window, scored: dict) -> dict:
    """Compares the interval with the champion's training window and records the verdict.

    The verdict goes to storage (``verdicts/``) and to the ``<name>-monitoring`` experiment, with
    the Evidently report as an artifact. A re-run overwrites both and keeps the verdict's
    ``handled`` mark, so a drift already acted on is not acted on twice.
    """
    storage = Storage.from_settings(settings)
    data = settings.data
    champion = registry.get_version(settings.name, scored["model_version"])
    current = storage.read_curated(window)
    reference = reference_frame(settings, storage, champion)
    columns, html = evidently_drift(reference, current, data, settings.monitoring.drift_share)
    html_path = storage.write_text(html, storage.report_path(window, "drift.html"))
    decision = drift_decision(columns, settings.monitoring.drift_share)
    path = storage.verdict_path(window)
    previous = storage.read_json(path) if storage.exists(path) else {}
    verdict = {
        **window.as_dict(),
        "rows": scored["rows"],
        "model_version": scored["model_version"],
        "reference_window": {"start": champion.window_start, "end": champion.window_end},
        "reference_rows": len(reference),
        **decision,
        "columns": columns,
        "metric": settings.model.metric,
        "live_metric": scored.get("live_metric"),
        "labelled_rows": scored.get("labelled_rows", 0),
        "report": html_path,
        "handled": previous.get("handled"),
    }
    verdict["mlflow_run_id"] = registry.log_monitoring_run(settings, window, verdict, html)
    storage.write_json(verdict, path)
    chart = charts.drift_chart(storage.verdicts(), settings.monitoring.drift_share, settings.model.metric)
    if chart is not None:
        storage.write_bytes(chart, storage.path("reports", "drift_over_time.png"))
    log.info("interval %s: drift share %.2f (%s), drift=%s", window.key, decision["drift_share"], decision["drifted"], decision["drift"])
    url = registry.run_url(verdict["mlflow_run_id"])
    log.info("MLflow monitoring run: %s", url or verdict["mlflow_run_id"])
    return {
        **{k: verdict[k] for k in ("start", "end", "drift", "drift_share", "live_metric", "model_version", "mlflow_run_id")},
        "mlflow_url": url,
    }


def pending_drift(verdicts: list[dict], consecutive: int, cooldown: timedelta, triggers: list[dict]) -> dict | None:
    """The drift a retrain should answer, or None.

    A retrain is due when the latest ``consecutive`` verdicts are all drifted, none of them is
    handled yet, all were measured against the same champion (a new champion starts a new
    streak), and the last drift-started retrain answered a verdict ending at least ``cooldown``
    earlier (in event time: replayed history behaves as live data would).
    """
    if len(verdicts) < consecutive:
        return None
    latest = verdicts[-consecutive:]
    if not all(v["drift"] and not v.get("handled") for v in latest):
        return None
    if len({v["model_version"] for v in latest}) > 1:
        return None
    end = to_utc(latest[-1]["end"])
    if triggers:
        last = max(to_utc(t["end"]) for t in triggers)
        if end - last < cooldown:
            log.info("drift at %s is within the cooldown (%s) of the retrain answering %s", end.isoformat(), cooldown, last.isoformat())
            return None
    return {
        "end": end.isoformat(),
        "verdicts": [Window.parse(v["start"], v["end"]).key for v in latest],
        "drift_share": latest[-1]["drift_share"],
        "model_version": latest[-1]["model_version"],
    }


def drift_state(settings) -> tuple[list[dict], list[dict]]:
    """The verdicts and the record of drift-started retrains, from storage."""
    storage = Storage.from_settings(settings)
    path = storage.path("drift_watch", "triggers.json")
    triggers = storage.read_json(path)["triggers"] if storage.exists(path) else []
    return storage.verdicts(), triggers


def find_pending_drift(settings) -> dict | None:
    """What the DriftSensor asks on every poke."""
    verdicts, triggers = drift_state(settings)
    return pending_drift(verdicts, settings.monitoring.consecutive, settings.monitoring.cooldown, triggers)


def mark_handled(settings, pending: dict, retrain_run_id: str) -> dict:
    """Records that ``retrain_run_id`` answers the pending drift; idempotent for the same run."""
    storage = Storage.from_settings(settings)
    path = storage.path("drift_watch", "triggers.json")
    triggers = storage.read_json(path)["triggers"] if storage.exists(path) else []
    if not any(t["retrain_run_id"] == retrain_run_id for t in triggers):
        triggers.append({"end": pending["end"], "verdicts": pending["verdicts"], "retrain_run_id": retrain_run_id})
        storage.write_json({"triggers": triggers}, path)
    for key in pending["verdicts"]:
        vpath = storage.path("verdicts", f"{key}.json")
        verdict = storage.read_json(vpath)
        verdict["handled"] = retrain_run_id
        storage.write_json(verdict, vpath)
    return {"retrain_run_id": retrain_run_id, "verdicts": pending["verdicts"]}
