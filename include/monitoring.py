"""Monitoring: score an interval with the champion, measure drift with Evidently against the
champion's training window, compute the live metric where labels exist, and keep a verdict.

The drift rule (``drift_decision``) and the trigger rule (``pending_drift``) are pure functions of
verdict records, unit-tested without Evidently or MLflow.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Literal, TypedDict

import numpy as np
import pandas as pd

from include import charts, labels, registry, rollout, tracking
from include.champion import previous_champion, rollout_record
from include.config import Settings, target_kind
from include.drift import ColumnDrift, DriftDecision, column_drift, drift_decision, drift_snapshot, plain_features, series_drift
from include.errors import DataError
from include.landing import LandingZone
from include.storage import Storage, Window, drift_retrain_run_id, to_utc
from include.training import predict, score

log = logging.getLogger(__name__)


class RolloutLive(TypedDict):
    """An interval's part of a rollout's evidence (the verdict's ``rollout``)."""

    version: int
    strategy: str
    share: float
    labelled_rows: int  # the candidate's (canary: the rows it served)
    champion_rows: int
    candidate_metric: float | None
    champion_metric: float | None


class BusinessVerdict(TypedDict):
    """The verdict's ``business``: the interval's value against the champion's own."""

    metric: str
    value: float | None
    rows: int
    reference: float | None  # the champion's value on its training run's out-of-time rows
    max_drop: float
    fell: bool | None


class ScoreResult(TypedDict):
    """What monitor's ``score`` returns (``score_interval``)."""

    rows: int
    model_version: int
    predictions: str  # the predictions file
    live_metric: float | None
    labelled_rows: int
    shadow_version: int | None
    shadow_metric: float | None
    business: dict | None  # ``include.business.BusinessValue`` plus the champion's ``classes``
    rollout: RolloutLive | None


class ReportResult(TypedDict):
    """What monitor's ``report`` returns (``draw_report``)."""

    report: str  # the HTML report's path in storage
    dashboard_url: str | None  # the model's project in the Evidently UI, when there is one
    snapshot_url: str | None  # this interval's snapshot there


class VerdictSummary(TypedDict):
    """What monitor's ``drift`` returns and its verdict event carries (``check_drift``)."""

    kind: Literal["verdict"]
    start: str
    end: str
    drift: bool
    drift_share: float
    live_metric: float | None
    model_version: int
    shadow_version: int | None
    shadow_metric: float | None
    mlflow_run_id: str
    prediction_drift: bool | None
    target_drift: bool | None
    business: BusinessVerdict | None
    mlflow_url: str | None
    report_url: str | None  # the Evidently report on the monitoring run (drawn by ``draw_report``)
    dashboard_url: str | None  # the model's model-health dashboard in the Evidently UI, when there is one


class PendingDrift(TypedDict):
    """A drift a retrain should answer (``pending_drift``), as the DriftSensor passes it on."""

    start: str | None  # where the retrain's window starts (``monitoring.drift_window``); None: its own default
    end: str
    verdicts: list[str]  # the drifted intervals' keys
    drift_share: float
    model_version: int
    retrain_run_id: str  # the retrain that answers it (``storage.drift_retrain_run_id``)


class HandledDrift(TypedDict):
    """What drift_watch's ``mark_handled`` returns."""

    kind: Literal["drift_trigger"]
    retrain_run_id: str
    verdicts: list[str]


class Degradation(TypedDict):
    """The evidence that the champion does worse than its shadow (``degradation``)."""

    champion: int
    shadow: int
    verdicts: list[str]
    gaps: list[float]
    reason: str


class NoChampion(LookupError):
    """There is no ``@champion`` yet, so there is nothing to score or compare against."""


def champion_or_raise(name: str) -> registry.VersionInfo:
    champion = registry.alias_version(name, registry.CHAMPION)
    if champion is None:
        raise NoChampion(f"registered model {name!r} has no @{registry.CHAMPION} yet; run the retrain DAG first")
    return champion


def live_metric(model, labelled: pd.DataFrame, settings: Settings, predictions: np.ndarray | None = None) -> float | None:
    """The primary metric on the labelled rows, or None when there are none (or one class only).

    Features and labels may use nullable pandas dtypes; they are scored as plain numpy values.
    ``predictions``: the model's scores for these rows, in their order, when they were just made
    (the scorer reads them instead of running the model again).

    Raises:
        LabelsError: a label is not valid for ``model.task`` (see ``include.labels``).
    """
    if labelled.empty:
        return None
    data = settings.data
    rows = plain_features(labelled, data.numeric, data.categorical)
    where = "the interval's labelled rows"
    rows[data.target] = labels.label_values(rows[data.target], settings.model.task, where, data.target, rows[data.id], source=where)
    try:
        return score(model, rows, data.features, data.target, settings.model.metric, predictions)
    except ValueError as err:
        log.warning("live %s not computed: %s", settings.model.metric, err)
        return None


def labelled_rows(frame: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """The rows of ``frame`` whose label is known, in the rows themselves or in the labels files."""
    data = settings.data
    rows = labels.with_labels(frame, data, settings.model.task)
    return rows[rows[data.target].notna()] if data.target in rows.columns else rows.iloc[0:0]


def output_drift(
    settings, champion: registry.VersionInfo, current: pd.DataFrame, predictions: pd.Series, reference: pd.DataFrame | None = None
) -> dict:
    """Prediction drift (the interval's scores against the out-of-time scores of the champion's
    training window: its last CV fold's rows, scored by that fold's model) and target drift (the interval's labels, where they have come, against the
    training window's), each with its method and threshold as for a feature column
    (``monitoring.prediction``, ``monitoring.target``; Evidently's choice by default).

    Neither counts towards the drift share: they say why a drift matters (the scores moved) or
    confirm it (the outcomes moved), and are in the verdict, its MLflow run and the drift chart.

    Args:
        reference: the champion's ``tracking.monitoring_reference`` when the caller has it.

    Returns:
        ``{"prediction_drift": {...}, "target_drift": {...}}``, each as a column of
        ``include.drift.column_drift``, or with status ``no_reference`` (a champion trained before
        out-of-time scores were kept) or ``no_labels``.
    """
    chosen = settings.monitoring
    reference = tracking.monitoring_reference(champion) if reference is None else reference
    if reference is None:
        missing = unjudged("no_reference", f"v{champion.version} was trained before driftloop kept its out-of-time scores")
        return {"prediction_drift": missing, "target_drift": missing}
    prediction = series_drift(reference["prediction"], predictions, "numerical", chosen.prediction.method, chosen.prediction.threshold)
    current_labels = label_values(labelled_rows(current, settings), settings, "the interval's labelled rows")
    return {"prediction_drift": prediction, "target_drift": target_drift(settings, reference["target"], current_labels)}


def unjudged(status: str, note: str) -> ColumnDrift:
    """A drift result that could not be judged (as ``series_drift`` shapes a result)."""
    return {"status": status, "drifted": None, "score": None, "threshold": None, "method": None, "method_name": None, "note": note}


def label_values(rows: pd.DataFrame, settings: Settings, where: str) -> pd.Series:
    """The target of labelled ``rows`` as plain numbers (``include.labels.label_values``)."""
    data = settings.data
    if rows.empty:
        return pd.Series([], dtype="float64")
    return labels.label_values(rows[data.target], settings.model.task, where, data.target, rows[data.id], source=where)


def target_drift(settings: Settings, reference: pd.Series, current: pd.Series) -> ColumnDrift:
    """The drift of the labels: classes compared as categories, regression targets as numbers."""
    if current.dropna().empty:
        return unjudged("no_labels", "no label has come for these rows yet")
    chosen = settings.monitoring.target
    return series_drift(reference, current, target_kind(settings.model.task), chosen.method, chosen.threshold)


class Verdict(TypedDict):
    """A monitored interval's verdict, as ``monitor`` stores it (``verdicts/<interval>.json``, the
    monitoring run's ``verdict.json``) and ``driftloop drift --json`` prints it; keys in
    ``VERDICT_KEYS`` order."""

    start: str
    end: str
    rows: int
    model_version: int | None
    reference_window: dict | None
    reference_rows: int
    drift: bool
    drift_share: float
    drifted_columns: int
    drifted: list[str]
    column_issues: dict[str, str]
    columns: dict[str, ColumnDrift]
    prediction_drift: ColumnDrift
    target_drift: ColumnDrift
    metric: str
    live_metric: float | None
    labelled_rows: int
    shadow_version: int | None
    shadow_metric: float | None
    business: BusinessVerdict | None
    rollout: RolloutLive | None
    report: str | None
    gate_warnings: list[str]
    handled: str | None  # the retrain run that answered it
    demoted: str | None  # the guard run that rolled its champion back
    mlflow_run_id: str | None


VERDICT_KEYS = tuple(Verdict.__annotations__)  # the verdict's keys, in order


def verdict_record(
    window: dict,
    rows: int,
    reference_rows: int,
    decision: DriftDecision,
    columns: dict[str, ColumnDrift],
    outputs: dict,
    metric: str,
    **rest,
) -> Verdict:
    """A verdict as ``monitor`` stores it (and ``driftloop drift --json`` prints it): every key of
    ``VERDICT_KEYS`` in that order, those not given (``rest``) None (``labelled_rows`` 0,
    ``gate_warnings`` empty)."""
    unknown = set(rest) - set(VERDICT_KEYS)
    if unknown:
        raise TypeError(f"not verdict keys: {sorted(unknown)}")
    given = {**window, "rows": rows, "reference_rows": reference_rows, **decision, "columns": columns, **outputs, "metric": metric}
    defaults = {"labelled_rows": 0, "gate_warnings": []}
    return {k: given[k] if k in given else rest.get(k, defaults.get(k)) for k in VERDICT_KEYS}


def score_interval(settings: Settings, window: Window) -> ScoreResult:
    """Scores the interval's curated rows with ``@champion`` and stores one prediction per id.

    With ``monitoring.shadow`` the previous champion (if any) scores the same rows as a shadow:
    its predictions sit next to the champion's, and its live metric is what an automatic rollback
    compares with. Re-running replaces the interval's predictions file, so predictions are never
    duplicated.

    Returns:
        ``{"rows", "model_version", "predictions", "live_metric", "labelled_rows", "shadow_version",
        "shadow_metric"}``.

    Raises:
        NoChampion: no champion exists yet.
        ValueError: the interval has no curated rows.
        LabelsError: a labels file (or a label in the rows) breaks a rule of ``include.labels``.
    """
    data = settings.data
    storage = Storage.from_settings(settings)
    champion = champion_or_raise(settings.name)
    frame = storage.read_curated(window)
    if frame.empty:
        raise DataError(f"no curated rows in [{window.start.isoformat()}, {window.end.isoformat()}): run ingest for this interval first")
    features = plain_features(frame, data.numeric, data.categorical)
    model = registry.load_model(f"models:/{settings.name}/{champion.version}")
    shadow_version = previous_champion(settings.name, champion.version) if settings.monitoring.shadow else None
    shadow = registry.try_load_model(f"models:/{settings.name}/{shadow_version}", f"shadow v{shadow_version}") if shadow_version else None
    shadow_version = shadow_version if shadow is not None else None

    out = frame[[data.id, data.timestamp]].copy()
    mine = predict(model, features, data.features, settings.model.task)
    running, candidate = _candidate(settings)
    theirs = predict(candidate, features, data.features, settings.model.task) if candidate is not None else None
    for column, values in rollout.served(frame, running if theirs is not None else None, mine, theirs, data.id).items():
        out[column] = values
    out["model_version"] = np.where(out["role"] == "canary", running["version"] if running else 0, champion.version)
    if theirs is not None:
        out["candidate_version"] = running["version"]
    if shadow is not None:
        try:
            out["shadow_prediction"] = predict(shadow, features, data.features, settings.model.task)
            out["shadow_version"] = shadow_version
        except (ValueError, KeyError) as err:  # e.g. the feature list changed since the shadow was trained
            log.warning("shadow v%s cannot score this interval (%s); monitoring goes on without it", shadow_version, err)
            shadow, shadow_version = None, None
    path = storage.write_parquet(out, storage.predictions_path(window))

    labelled = labelled_rows(frame, settings)
    made = out.loc[labelled.index]  # the labelled rows' scores as just made (labelled keeps frame's index)
    champion_scores = "champion_prediction" if "champion_prediction" in out.columns else "prediction"
    live = live_metric(model, labelled, settings, made[champion_scores].to_numpy())
    staged = rollout_live(settings, running, labelled, made, model, candidate) if theirs is not None else None
    worth = None
    if settings.business is not None:
        classes = [c.item() if hasattr(c, "item") else c for c in getattr(model, "classes_", [])] or None
        worth = interval_business(settings, out[champion_scores].to_numpy(), made[champion_scores].to_numpy(), labelled, classes)
    shadow_live = live_metric(shadow, labelled, settings, made["shadow_prediction"].to_numpy()) if shadow is not None else None
    log.info("scored %d rows with %s v%d; live %s = %s", len(out), settings.name, champion.version, settings.model.metric, live)
    if shadow is not None:
        log.info("shadow v%d: live %s = %s", shadow_version, settings.model.metric, shadow_live)
    return {
        "rows": len(out),
        "model_version": champion.version,
        "predictions": path,
        "live_metric": live,
        "labelled_rows": len(labelled),
        "shadow_version": shadow_version,
        "shadow_metric": shadow_live,
        "business": worth,
        "rollout": staged,
    }


def _candidate(settings: Settings):
    """The running rollout and its candidate model, or ``(None, None)``; a candidate that cannot
    be loaded is logged and left out (the interval is scored by the champion alone)."""
    running = rollout_record(settings.name)
    if running is None:
        return None, None
    model = registry.try_load_model(f"models:/{settings.name}/{running['version']}", f"candidate v{running['version']}")
    return running, model


def rollout_live(
    settings: Settings, running: dict, labelled: pd.DataFrame, made: pd.DataFrame, champion_model, candidate_model
) -> RolloutLive:
    """This interval's part of the rollout evidence, for the verdict: the candidate's and the
    champion's live metric (shadow: on the same labelled rows; canary: each on the rows it
    served) and the rows each was measured on."""
    live = (labelled[settings.data.timestamp] >= to_utc(running["since"])).to_numpy()  # not its own training rows
    mine, theirs = rollout.arms(made["role"], running["strategy"])
    mine, theirs = mine & live, theirs & live
    candidate = live_metric(candidate_model, labelled[mine.to_numpy()], settings, made.loc[mine, "candidate_prediction"].to_numpy())
    champion = live_metric(champion_model, labelled[theirs.to_numpy()], settings, made.loc[theirs, "champion_prediction"].to_numpy())
    return {
        "version": running["version"],
        "strategy": running["strategy"],
        "share": running["share"],
        "labelled_rows": int(mine.sum()),
        "champion_rows": int(theirs.sum()),
        "candidate_metric": candidate,
        "champion_metric": champion,
    }


def interval_business(
    settings: Settings, scores: np.ndarray, labelled_scores: np.ndarray, labelled: pd.DataFrame, classes: list | None
) -> dict:
    """The interval's business value (``include.business``): ``approval_rate`` over every scored
    row, ``expected_value`` over the labelled ones; with the champion's ``classes``."""
    from include import business

    chosen = settings.business
    if business.needs_labels(chosen.metric):
        target = label_values(labelled, settings, "the interval's labelled rows").to_numpy()
        result = business.value(chosen, settings.model.task, labelled_scores, target, classes)
    else:
        result = business.value(chosen, settings.model.task, scores, None, classes)
    return {**result, "classes": classes}


def business_verdict(settings: Settings, worth: dict | None, reference: pd.DataFrame | None) -> BusinessVerdict | None:
    """The verdict's business record: the interval's value against the champion's own on its
    out-of-time rows (``reference``), and whether it fell by more than ``business.max_drop``."""
    if settings.business is None or worth is None:
        return None
    from include import business

    chosen = settings.business
    base = None
    if reference is not None:
        scored = reference[reference["prediction"].notna()]
        base = business.value(
            chosen, settings.model.task, scored["prediction"].to_numpy(), scored["target"].to_numpy(), worth.get("classes")
        )["value"]
    return {
        "metric": worth["metric"],
        "value": worth["value"],
        "rows": worth["rows"],
        "reference": base,
        "max_drop": chosen.max_drop,
        "fell": business.fell(worth["value"], base, chosen.max_drop),
    }


def reference_window(champion: registry.VersionInfo, length: timedelta | None) -> Window:
    """The champion's training window, or only its last ``length`` of it."""
    window = Window.parse(champion.window_start, champion.window_end)
    if length is None or window.end - length <= window.start:
        return window
    return Window(window.end - length, window.end)


def reference_frame(settings: Settings, storage: Storage, champion: registry.VersionInfo) -> pd.DataFrame:
    """The champion's training window (its last ``monitoring.reference`` when set) from curated
    storage, sampled to ``monitoring.reference_rows``."""
    window = reference_window(champion, settings.monitoring.reference)
    frame = storage.read_curated(window)
    if frame.empty:
        raise DataError(f"champion v{champion.version}'s training window {window.as_dict()} has no curated rows to compare with")
    limit = settings.monitoring.reference_rows
    return frame.sample(n=limit, random_state=0) if len(frame) > limit else frame


def check_drift(settings: Settings, window: Window, scored: ScoreResult) -> VerdictSummary:
    """Compares the interval with the champion's training window and records the verdict.

    The verdict goes to storage (``verdicts/``) and to the ``<name>-monitoring`` experiment, with
    the Evidently report as an artifact. A re-run overwrites both and keeps the verdict's
    ``handled`` mark, so a drift already acted on is not acted on twice. A feature Evidently cannot
    compare (all null, constant, missing on a side) is reported, not a crash: its status is in
    ``columns`` and in ``column_issues``, and ``column_states`` says how it counts for the share.
    """
    storage = Storage.from_settings(settings)
    data = settings.data
    champion = registry.get_version(settings.name, scored["model_version"])
    current = storage.read_curated(window)
    reference = reference_frame(settings, storage, champion)
    columns = column_drift(reference, current, data, settings.monitoring.columns)
    decision = drift_decision(columns, settings.monitoring.drift_share)
    kept = tracking.monitoring_reference(champion)
    scores = storage.read_parquet(scored["predictions"])
    champion_scores = scores["champion_prediction"] if "champion_prediction" in scores.columns else scores["prediction"]
    outputs = output_drift(settings, champion, current, champion_scores, kept)
    worth = business_verdict(settings, scored.get("business"), kept)
    for what, result in outputs.items():
        log.info(
            "interval %s: %s %s (%s %s, threshold %s; %s)",
            window.key,
            what,
            result["drifted"],
            result["method"],
            result["score"],
            result["threshold"],
            result["note"],
        )
    for col, status in decision["column_issues"].items():
        log.warning("interval %s: column %r is %s (%s); drifted=%s", window.key, col, status, columns[col]["note"], columns[col]["drifted"])
    path = storage.verdict_path(window)
    previous = storage.read_json(path) if storage.exists(path) else {}
    verdict = verdict_record(
        window.as_dict(),
        scored["rows"],
        len(reference),
        decision,
        columns,
        outputs,
        settings.model.metric,
        model_version=scored["model_version"],
        reference_window=reference_window(champion, settings.monitoring.reference).as_dict(),
        live_metric=scored.get("live_metric"),
        labelled_rows=scored.get("labelled_rows", 0),
        shadow_version=scored.get("shadow_version"),
        shadow_metric=scored.get("shadow_metric"),
        business=worth,
        rollout=scored.get("rollout"),
        # drawn next by draw_report (its own task: the verdict does not wait for the pictures)
        report=storage.report_path(window, "drift.html"),
        # findings of gate rules set to warn (quality.severity) on the batches curated for it
        gate_warnings=LandingZone.from_settings(settings, storage).published_warnings(window),
        # marks of what was already done about this verdict survive a re-run (a demotion only
        # while the same champion is scored: evidence against a new one is fresh)
        handled=previous.get("handled"),
        demoted=previous.get("demoted") if previous.get("model_version") == scored["model_version"] else None,
    )
    verdict["mlflow_run_id"] = tracking.log_monitoring_run(settings, window, verdict)
    storage.write_json(verdict, path)
    chart = charts.drift_chart(storage.verdicts(), settings.monitoring.drift_share, settings.model.metric)
    if chart is not None:
        storage.write_bytes(chart, storage.path("reports", "drift_over_time.png"))
        tracking.log_timeline(verdict["mlflow_run_id"], chart)
    log.info("interval %s: drift share %.2f (%s), drift=%s", window.key, decision["drift_share"], decision["drifted"], decision["drift"])
    url = registry.run_url(verdict["mlflow_run_id"])
    log.info("MLflow monitoring run: %s", url or verdict["mlflow_run_id"])
    return {
        "kind": "verdict",
        **{
            k: verdict[k]
            for k in (
                "start",
                "end",
                "drift",
                "drift_share",
                "live_metric",
                "model_version",
                "shadow_version",
                "shadow_metric",
                "mlflow_run_id",
            )
        },
        "prediction_drift": outputs["prediction_drift"]["drifted"],
        "target_drift": outputs["target_drift"]["drifted"],
        "business": worth,
        "mlflow_url": url,
        "report_url": registry.artifact_url(verdict["mlflow_run_id"], tracking.REPORT_ARTIFACT) if url else None,
        "dashboard_url": dashboard_url(settings),
    }


def dashboard_url(settings: Settings) -> str | None:
    """The model's page in the Evidently UI (the model-health dashboard), when there is one."""
    from include.dashboard import Dashboard

    board = Dashboard.from_env()
    return board.project_url(settings.name) if board else None


def draw_report(settings: Settings, window: Window) -> ReportResult:
    """Evidently's report of an interval's stored verdict: one Evidently run on a sample of the
    rows the verdict compared, with its methods and thresholds (``include.drift.drift_snapshot``),
    and the verdict's own figures on all rows (``include.dashboard.verdict_value_class``). Its HTML is
    written where the verdict says (``report``) and to its MLflow run; with an Evidently UI
    service (``EVIDENTLY_URL``), the snapshot joins the model's dashboard project. A re-run
    replaces all three.

    Raises:
        DataError: the interval has no verdict (``check_drift`` did not run for it).
        DashboardError: the Evidently UI service refused the snapshot or could not be reached.
    """
    from include import dashboard

    storage = Storage.from_settings(settings)
    path = storage.verdict_path(window)
    if not storage.exists(path):
        raise DataError(f"no verdict for [{window.start.isoformat()}, {window.end.isoformat()}) to draw a report of: run monitor for it")
    verdict = storage.read_json(path)
    champion = registry.get_version(settings.name, verdict["model_version"])
    current, reference = storage.read_curated(window), reference_frame(settings, storage, champion)
    mon = settings.monitoring
    figures = dashboard.verdict_values(verdict, settings)
    about = {
        "timestamp": window.start.replace(tzinfo=None),
        "metadata": dashboard.snapshot_metadata(verdict, window),
        "tags": [dashboard.TAG],
        "name": f"{settings.name} {verdict['start']} .. {verdict['end']}",
    }
    run = drift_snapshot(
        reference,
        current,
        settings.data,
        verdict["columns"],
        mon.drift_share,
        mon.report_rows,
        metrics=figures,
        **about,
    )
    html = run.html()
    path = storage.write_text(html, verdict["report"])
    tracking.log_report(verdict["mlflow_run_id"], html)
    log.info("interval %s: Evidently report from up to %d rows a side: %s", window.key, mon.report_rows, path)
    board = dashboard.Dashboard.from_env()
    snapshot_url = None
    # the snapshot after the HTML: a dashboard that refuses it fails the task (and its retries
    # send it again) without costing the report
    if board is None:
        log.info("no Evidently UI service (%s unset): the snapshot is not added to a dashboard", dashboard.URL_ENV)
    else:
        snapshot = run.snapshot
        if mon.dashboard == "figures":  # the same figures, without the pictures (a few KB)
            unpictured = {c: {**r, "method": None} for c, r in verdict["columns"].items()}
            snapshot = drift_snapshot(
                reference, current, settings.data, unpictured, mon.drift_share, mon.report_rows, metrics=figures, **about
            ).snapshot
        snapshot_url = board.publish(settings, window, snapshot)
        tracking.client().set_tag(verdict["mlflow_run_id"], "driftloop.dashboard", snapshot_url)
        log.info("interval %s: model-health dashboard %s (snapshot %s)", window.key, board.project_url(settings.name), snapshot_url)
    return {
        "report": path,
        "dashboard_url": dashboard_url(settings),
        "snapshot_url": snapshot_url,
    }


def pending_drift(
    verdicts: list[dict],
    consecutive: int,
    cooldown: timedelta,
    triggers: list[dict],
    window: timedelta | None = None,
    from_onset: bool = False,
    min_rows: int = 0,
) -> PendingDrift | None:
    """The drift a retrain should answer, or None.

    A retrain is due when the latest ``consecutive`` verdicts are all drifted, none of them is
    handled yet, all were measured against the same champion (a new champion starts a new
    streak), and the last drift-started retrain answered a verdict ending at least ``cooldown``
    earlier (in event time: replayed history behaves as live data would).

    The retrain's window ends with the latest verdict and is ``window`` long; with ``from_onset``
    it starts instead at the onset (``drift_onset``), so the new model learns from the world as it
    is now and not mostly from the world before the change, and the retrain waits until the
    intervals since the onset hold ``min_rows`` rows.
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
    start = end - window if window is not None else None
    if from_onset:
        streak = drift_streak(verdicts)
        onset = to_utc(streak[0]["start"])
        rows = sum(v.get("rows") or 0 for v in streak)
        if rows < min_rows:
            log.info("drift since %s: %d rows so far, %d needed to retrain on them alone; waiting", onset.isoformat(), rows, min_rows)
            return None
        start = onset if start is None else max(start, onset)
    return PendingDrift(
        start=start.isoformat() if start is not None else None,
        end=end.isoformat(),
        verdicts=[Window.parse(v["start"], v["end"]).key for v in latest],
        drift_share=latest[-1]["drift_share"],
        model_version=latest[-1]["model_version"],
        retrain_run_id=drift_retrain_run_id(end),
    )


def drift_streak(verdicts: list[dict]) -> list[dict]:
    """The latest unbroken run of drifted verdicts measured against the latest verdict's champion,
    oldest first: its first interval is where the drift began (its onset). Verdicts an earlier
    retrain answered count too while the same champion is scored: that retrain was not promoted,
    and the world has been drifted since."""
    streak: list[dict] = []
    for v in reversed(verdicts):
        if not v["drift"] or v["model_version"] != verdicts[-1]["model_version"]:
            break
        streak.append(v)
    return list(reversed(streak))


def degradation(verdicts: list[dict], champion: int, margin: float, intervals: int, min_rows: int = 1) -> Degradation | None:
    """The evidence that ``champion`` does worse than its shadow, or None.

    The evidence is the latest ``intervals`` labelled verdicts (both live metrics present, on at
    least ``min_rows`` labelled rows) since ``champion`` last took over; intervals whose labels have
    not arrived are passed over. Degraded when all of them were measured against the same shadow,
    none is marked as already acted on, and in each the champion trails the shadow by more than
    ``margin``.
    """
    mine = []
    for v in reversed(verdicts):
        if v["model_version"] != champion:
            break  # an earlier reign of another champion: not this champion's streak
        mine.append(v)
    labelled = [
        v for v in mine if v.get("live_metric") is not None and v.get("shadow_metric") is not None and v.get("labelled_rows", 0) >= min_rows
    ]
    if len(labelled) < intervals:
        return None
    latest = list(reversed(labelled[:intervals]))
    if any(v.get("demoted") for v in latest):
        return None
    shadows = {v.get("shadow_version") for v in latest}
    if len(shadows) != 1 or None in shadows:
        return None
    gaps = [v["shadow_metric"] - v["live_metric"] for v in latest]
    if min(gaps) <= margin:
        return None
    metric = latest[-1].get("metric", "metric")
    numbers = ", ".join(f"{Window.parse(v['start'], v['end']).key}: {v['live_metric']:.4f} vs {v['shadow_metric']:.4f}" for v in latest)
    shadow = shadows.pop()
    return {
        "champion": champion,
        "shadow": shadow,
        "verdicts": [Window.parse(v["start"], v["end"]).key for v in latest],
        "gaps": gaps,
        "reason": (
            f"champion v{champion} trails shadow v{shadow} on live {metric} by more than {margin} "
            f"in the last {intervals} labelled intervals ({numbers})"
        ),
    }


def mark_demoted(settings: Settings, keys: list[str], airflow_run_id: str) -> None:
    """Marks the verdicts that led to a rollback, so they never count towards another one."""
    _mark_verdicts(Storage.from_settings(settings), keys, "demoted", airflow_run_id)


def _mark_verdicts(storage: Storage, keys: list[str], field: str, value: str) -> None:
    for key in keys:
        vpath = storage.path("verdicts", f"{key}.json")
        verdict = storage.read_json(vpath)
        verdict[field] = value
        storage.write_json(verdict, vpath)


def drift_state(settings: Settings) -> tuple[list[dict], list[dict]]:
    """The verdicts and the record of drift-started retrains, from storage."""
    storage = Storage.from_settings(settings)
    path = storage.path("drift_watch", "triggers.json")
    triggers = storage.read_json(path)["triggers"] if storage.exists(path) else []
    return storage.verdicts(), triggers


def find_pending_drift(settings: Settings) -> PendingDrift | None:
    """What the DriftSensor asks on every poke."""
    verdicts, triggers = drift_state(settings)
    mon, training = settings.monitoring, settings.training
    onset = mon.drift_window == "onset"
    return pending_drift(verdicts, mon.consecutive, mon.cooldown, triggers, training.window, onset, training.min_rows)


def mark_handled(settings: Settings, pending: PendingDrift, retrain_run_id: str) -> HandledDrift:
    """Records that ``retrain_run_id`` answers the pending drift; idempotent for the same run."""
    storage = Storage.from_settings(settings)
    path = storage.path("drift_watch", "triggers.json")
    triggers = storage.read_json(path)["triggers"] if storage.exists(path) else []
    if not any(t["retrain_run_id"] == retrain_run_id for t in triggers):
        triggers.append(
            {"start": pending["start"], "end": pending["end"], "verdicts": pending["verdicts"], "retrain_run_id": retrain_run_id}
        )
        storage.write_json({"triggers": triggers}, path)
    _mark_verdicts(storage, pending["verdicts"], "handled", retrain_run_id)
    return HandledDrift(kind="drift_trigger", retrain_run_id=retrain_run_id, verdicts=pending["verdicts"])
