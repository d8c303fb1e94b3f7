"""The one typed settings object, loaded from the YAML file named by ``DRIFTLOOP_CONFIG``.

Relative paths in the file (``storage``, ``data.landing``, ``data.labels``) are read relative to the
directory of the YAML file, so the scheduler, the workers and the tests agree whatever their
working directory is. fsspec URLs (``s3://...``, ``memory://...``) are kept as written.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from include import estimators, stattests
from include.errors import DriftloopError

DEFAULT_CONFIG = Path(__file__).with_name("demo.yaml")
CONFIG_ENV = "DRIFTLOOP_CONFIG"

_DURATION = re.compile(r"^\s*(\d+)\s*([DdHhMmWw])\s*$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "w": "weeks"}


class ConfigError(DriftloopError, ValueError):
    """The configuration file is missing, unreadable or does not match the contract."""


def parse_duration(value: str | int | timedelta) -> timedelta:
    """Reads ``90D``, ``12H``, ``30M`` or ``2W`` (or a number of days) as a timedelta.

    Raises:
        ValueError: the value is not of that form.
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return timedelta(days=value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration like '90D', '12H', '30M' or '2W'")
    amount, unit = int(match.group(1)), _UNITS[match.group(2).lower()]
    if amount <= 0:
        raise ValueError(f"{value!r} must be longer than zero")
    return timedelta(**{unit: amount})


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def _is_url(path: str) -> bool:
    return "://" in path


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSettings(_Section):
    landing: str
    timestamp: str
    # how event times are written: iso (ISO 8601 text, or a typed timestamp column), epoch_s,
    # epoch_ms, or a strftime pattern such as "%d/%m/%Y %H:%M"; applied exactly: a value it cannot
    # read is a gate failure, never a guess (05/01/2026 is not read as May 1st under iso)
    timestamp_format: str = "iso"
    id: str
    target: str
    labels: str | None = None
    numeric: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)

    @field_validator("timestamp_format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in ("iso", "epoch_s", "epoch_ms") and "%" not in value:
            raise ValueError(f"{value!r} is not iso, epoch_s, epoch_ms or a strftime pattern such as '%d/%m/%Y %H:%M'")
        return value

    @model_validator(mode="after")
    def _columns_are_distinct(self) -> DataSettings:
        if not self.numeric and not self.categorical:
            raise ValueError("name at least one feature in data.numeric or data.categorical")
        named = [self.timestamp, self.id, self.target, *self.numeric, *self.categorical]
        repeated = sorted({c for c in named if named.count(c) > 1})
        if repeated:
            raise ValueError(f"columns named twice across data.*: {repeated}")
        return self

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]


class ModelSettings(_Section):
    task: Literal["classification", "regression"]
    metric: str
    # a name of include.estimators.ESTIMATORS: the whole pipeline (preprocessing and model)
    estimator: str = estimators.DEFAULT
    # the estimator's own parameters (scikit-learn's names), over its defaults
    params: dict[str, float | int | str | None] = Field(default_factory=dict)

    @field_validator("estimator")
    @classmethod
    def _known_estimator(cls, name: str) -> str:
        if name not in estimators.ESTIMATORS:
            raise ValueError(f"unknown estimator {name!r}; choose one of {sorted(estimators.ESTIMATORS)}")
        return name

    @model_validator(mode="after")
    def _params_fit_the_estimator(self, info: ValidationInfo) -> ModelSettings:
        # builds the estimator, which imports scikit-learn: only where the metric is checked too
        if not (info.context or {}).get("check_metric", True) or self.estimator not in estimators.ESTIMATORS:
            return self
        known = estimators.parameter_names(self.estimator, self.task)
        unknown = sorted(set(self.params) - known)
        if unknown:
            raise ValueError(f"model.params {unknown} are not parameters of {self.estimator} for {self.task}; it takes {sorted(known)}")
        return self

    @field_validator("metric")
    @classmethod
    def _known_scorer(cls, metric: str, info: ValidationInfo) -> str:
        # Checked against scikit-learn's registry, which costs importing scikit-learn (2 s): done
        # when a config is loaded, except by the tasks that never score (``check_metric=False``:
        # the gate at a million rows spent a sixth of its time here).
        if not (info.context or {}).get("check_metric", True):
            return metric
        from sklearn.metrics import get_scorer_names

        if metric not in get_scorer_names():
            raise ValueError(f"{metric!r} is not a scikit-learn scorer name (see sklearn.metrics.get_scorer_names())")
        return metric


class TrainingSettings(_Section):
    window: Duration = timedelta(days=90)
    folds: int = Field(default=5, ge=2, le=50)
    min_rows: int = Field(default=200, ge=10)
    seed: int = 0
    # folds fitted at a time (threads sharing the rows; -1: one per core). Each running fold holds
    # its own copy of its training rows and the booster's state: memory grows with it.
    n_jobs: int = Field(default=1, ge=-1)

    @field_validator("n_jobs")
    @classmethod
    def _not_zero(cls, n_jobs: int) -> int:
        if n_jobs == 0:
            raise ValueError("n_jobs is a number of folds at a time (1, 2, ...) or -1 for one per core, not 0")
        return n_jobs


class PromotionSettings(_Section):
    mode: Literal["auto", "approval"] = "auto"
    min_improvement: float = 0.0
    min_rows: int = Field(default=50, ge=1)
    # how long the approval step waits for a human under mode: approval; unanswered, the
    # challenger is rejected (the run ends, @champion stays)
    approval_timeout: Duration = timedelta(hours=24)
    # direct: a better challenger becomes champion at once; shadow: it first scores every interval
    # beside the champion and is promoted once better on min_rows labelled live rows; canary: it
    # serves canary_share of the rows (by a hash of the id) and is promoted when not worse on
    # min_rows labelled rows it served (include.rollout). Otherwise it is retired.
    strategy: Literal["direct", "shadow", "canary"] = "direct"
    canary_share: float = Field(default=0.1, gt=0, lt=1)
    # with a business metric: a challenger whose value on the comparison rows is lower than the
    # champion's by more than this is not promoted
    max_business_drop: float = Field(default=0.0, ge=0)


class FairnessSettings(_Section):
    """The fairness gate: ``metric`` per group of the column ``group`` on the comparison rows
    (fairlearn's ``MetricFrame``); a challenger whose gap between the best and the worst group is
    over ``max_gap`` is not promoted."""

    group: str
    metric: str = "selection_rate"
    max_gap: float = Field(ge=0)
    threshold: float = 0.5  # classification: the score from which a row is predicted positive
    min_group_rows: int = Field(default=30, ge=1)  # smaller groups are shown, not judged

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        from include.fairness import METRICS

        if metric not in METRICS:
            raise ValueError(f"unknown fairness metric {metric!r}; choose one of {sorted(METRICS)}")
        return metric


class ValueMatrix(_Section):
    """What one row is worth by its outcome: acted on (score >= threshold) and positive (tp), acted
    on and negative (fp), not acted on and positive (fn), neither (tn)."""

    tp: float
    fp: float
    fn: float = 0.0
    tn: float = 0.0


class BusinessSettings(_Section):
    """The business metric tracked in every verdict and checked at promotion (``include.business``)."""

    metric: Literal["approval_rate", "expected_value"]
    threshold: float = 0.5
    values: ValueMatrix | None = None  # expected_value, classification
    unit_value: float = Field(default=1.0, gt=0)  # expected_value, regression: the cost of one unit of error
    # an interval whose value is more than this below the champion's own (on its out-of-time rows) is alerted on
    max_drop: float = Field(default=0.0, ge=0)


class RegistrySettings(_Section):
    """How many registered versions stay active: older ones are archived (tagged, aliases removed,
    artifacts kept), never the champion, the previous champion or a version under rollout."""

    keep: int = Field(default=10, ge=1)


class MlflowSettings(_Section):
    """How long the MLflow client waits for the tracking server, and how often it retries a
    request, before the task fails (and Airflow retries the task). MLflow's own defaults (120 s,
    7 retries with exponential backoff) can hold a task for minutes on a server that is down."""

    http_timeout: int = Field(default=60, ge=1)  # seconds per request
    http_retries: int = Field(default=3, ge=0, le=10)  # MLflow refuses more than 10


class ColumnDriftSettings(_Section):
    """One column's drift method (an Evidently method name, see ``include.stattests``) and
    threshold; either left out means Evidently's choice for the column."""

    method: str | None = None
    threshold: float | None = Field(default=None, gt=0)

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str | None) -> str | None:
        if value is not None and value not in stattests.METHODS:
            raise ValueError(f"unknown drift method {value!r}; Evidently's methods are {stattests.NAMES}")
        return value


def target_kind(task: str) -> stattests.Kind:
    """How drift compares targets: classes as categories, regression targets as numbers."""
    return "categorical" if task == "classification" else "numerical"


class MonitoringSettings(_Section):
    drift_share: float = Field(default=0.5, gt=0, le=1)
    cooldown: Duration = timedelta(days=7)
    consecutive: int = Field(default=1, ge=1)
    # the window a drift-started retrain learns from. onset: from the first drifted interval of
    # the streak (at most training.window back, and only once those intervals hold
    # training.min_rows rows), so the new model learns the world after the change rather than
    # mostly the one before it; training: the last training.window, like any other retrain
    drift_window: Literal["onset", "training"] = "onset"
    reference_rows: int = Field(default=20000, ge=100)
    # compare with only the last part of the champion's training window (null: all of it); with a
    # long window that straddles a shift, the whole window reads "drifted" against either side
    reference: Duration | None = None
    poke_interval: int = Field(default=60, ge=1)
    watch_timeout: Duration = timedelta(minutes=50)
    # shadow: also score each interval with the previous champion (one predict more per interval)
    shadow: bool = True
    # auto: move @champion back to the previous champion when, on the live metric, it trails the
    # shadow by more than rollback_margin for rollback_intervals labelled intervals in a row
    rollback: Literal["auto", "manual"] = "auto"
    rollback_margin: float = Field(default=0.02, ge=0)
    rollback_intervals: int = Field(default=2, ge=1)
    # per feature column: {method: <Evidently method name>, threshold: <number>}; the verdict is
    # computed on all rows either way
    columns: dict[str, ColumnDriftSettings] = Field(default_factory=dict)
    # the champion's scores on the interval against its out-of-time scores in training, and the
    # interval's labels (where they have come) against the training window's
    prediction: ColumnDriftSettings = ColumnDriftSettings()
    target: ColumnDriftSettings = ColumnDriftSettings()
    # rows a side that Evidently's HTML report draws its pictures from (the verdict uses all rows)
    report_rows: int = Field(default=5000, ge=100)
    # what each interval's snapshot in the model-health dashboard (Evidently's UI) holds: the
    # verdict's figures and the drift preset's pictures (full: about 1 MB a snapshot for twenty
    # columns, 5 MB of the service's memory), or the figures alone (about 13 KB; the pictures stay
    # in the HTML report on MLflow). BENCHMARKS.md has the figures; daily intervals want figures.
    dashboard: Literal["full", "figures"] = "full"


LearnedRule = Literal["row_count", "null_rate", "range", "categories"]


class QualitySettings(_Section):
    """Tolerances added to the gate once a champion exists (learned from its training window)."""

    null_rate_slack: float = Field(default=0.02, ge=0, le=1)
    range_slack: float = Field(default=0.25, ge=0)
    range_mostly: float = Field(default=0.99, gt=0, le=1)
    category_mostly: float = Field(default=0.99, gt=0, le=1)
    row_count_tolerance: float = Field(default=0.8, ge=0, le=1)
    # event times later than the run's time plus this are a gate failure (rule max_clock_skew)
    max_clock_skew: Duration = timedelta(hours=1)
    # block (default): a batch that breaks the learned rule is quarantined; warn: it passes, and
    # the findings go into the gate's result, the alert and the interval's verdict. Rules that the
    # config alone states (columns, types, ids, timestamps) always block.
    severity: dict[LearnedRule, Literal["block", "warn"]] = Field(default_factory=dict)
    # a re-ingest that would drop more than this share of a window's curated rows (landing files
    # gone to retention) is refused unless its run conf says {"force": true}
    max_curated_drop: float = Field(default=0.2, ge=0, le=1)


class ScheduleSettings(_Section):
    """Cron expressions or presets; null means "only when triggered" (the demo replays history)."""

    ingest: str | None = "@daily"
    retrain: str | None = "@weekly"
    start_date: str = "2026-01-01"
    # true: after an outage (or from start_date on first deploy) ingest runs every missed interval
    catchup: bool = False
    # a landing file that arrives (or changes) after a window it has rows in was published is late:
    # alert (default) tells which windows to re-ingest; reingest also re-ingests them in the run
    late: Literal["alert", "reingest"] = "alert"


AlertKind = Literal["failure", "unplaced", "late", "quality", "drift", "promotion", "rejected", "rollback", "degraded", "business"]


class AlertsSettings(_Section):
    """Where alerts go: always ``<storage>/alerts/``, and to the webhook of the Airflow connection
    ``connection`` when it is defined (its URL is a secret, so it never sits in this file)."""

    connection: str | None = "driftloop_alerts"
    on: list[AlertKind] = ["failure", "unplaced", "late", "quality", "drift", "promotion", "rejected", "rollback", "degraded", "business"]


class Settings(_Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    storage: str
    data: DataSettings
    model: ModelSettings
    training: TrainingSettings = TrainingSettings()
    promotion: PromotionSettings = PromotionSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    quality: QualitySettings = QualitySettings()
    schedule: ScheduleSettings = ScheduleSettings()
    alerts: AlertsSettings = AlertsSettings()
    mlflow: MlflowSettings = MlflowSettings()
    registry: RegistrySettings = RegistrySettings()
    fairness: FairnessSettings | None = None
    business: BusinessSettings | None = None
    source: str | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _gates_fit_the_task(self) -> Settings:
        if self.fairness is not None:
            from include.fairness import METRICS

            task = METRICS[self.fairness.metric][0]
            if task != self.model.task:
                raise ValueError(f"fairness.metric {self.fairness.metric!r} is for {task}; model.task is {self.model.task}")
            if self.fairness.group in (self.data.target, self.data.timestamp, self.data.id):
                raise ValueError(f"fairness.group {self.fairness.group!r} is the target, timestamp or id column: name a column of groups")
        business = self.business
        if business is not None and business.metric == "expected_value" and self.model.task == "classification" and business.values is None:
            raise ValueError("business.values {tp, fp, fn, tn} is required for expected_value on a classification task")
        return self

    @model_validator(mode="after")
    def _drift_methods_fit_their_columns(self) -> Settings:
        kinds = {**dict.fromkeys(self.data.numeric, "numerical"), **dict.fromkeys(self.data.categorical, "categorical")}
        for column, chosen in self.monitoring.columns.items():
            where = f"monitoring.columns.{column}"
            if column not in kinds:
                raise ValueError(f"{where}: {column!r} is not a feature (data.numeric, data.categorical)")
            if chosen.method is not None:
                stattests.check_method(chosen.method, kinds[column], where)
        if self.monitoring.prediction.method is not None:
            stattests.check_method(self.monitoring.prediction.method, "numerical", "monitoring.prediction")
        if self.monitoring.target.method is not None:
            stattests.check_method(self.monitoring.target.method, target_kind(self.model.task), "monitoring.target")
        return self

    @model_validator(mode="after")
    def _locations_apart(self, info: ValidationInfo) -> Settings:
        """Refuses a storage root and input folders that lie inside one another (or coincide).

        Landing and labels folders are searched recursively, so a storage root inside either would
        have curated files read back as batches or labels; and storage is the pipeline's to write,
        so raw inputs inside it could be overwritten or wiped with it. Locations compare as
        resolved paths, or for URLs by scheme, bucket and path, on whole path components
        (``/data/landing2`` is not inside ``/data/landing``). Relative paths are anchored at the
        validation context's ``base`` when given; without it, a relative path is compared only
        with other relative paths (they share the YAML file's folder as base).
        """
        base = (info.context or {}).get("base")
        aliases = {"s3a": "s3", "gs": "gcs", "local": "file"}

        def where(path: str) -> tuple[str, tuple[str, ...]]:
            scheme, sep, rest = path.partition("://")
            scheme = aliases.get(scheme.lower(), scheme.lower()) if sep else "file"
            rest = rest if sep else path
            if scheme != "file":
                netloc, _, key = rest.partition("/")
                parts = [p for p in key.split("/") if p and p != "."]
                return scheme, (netloc.rsplit("@", 1)[-1], *parts)
            local = Path(rest).expanduser()
            if not local.is_absolute() and base is None:
                return "relative", Path(os.path.normpath(local)).parts
            return "file", (Path(base) / local if not local.is_absolute() else local).resolve().parts

        named = {"storage": self.storage, "data.landing": self.data.landing, "data.labels": self.data.labels}
        located = {k: where(v) for k, v in named.items() if v}
        why = {
            ("storage", "data.landing"): "the landing zone is searched recursively: curated files would be read back as new batches",
            ("data.landing", "storage"): "storage is the pipeline's to write: raw landing files must not live in it",
            ("data.labels", "storage"): "storage is the pipeline's to write: raw labels files must not live in it",
            ("storage", "data.labels"): "the labels folder is searched recursively: stored files would be read as labels",
            ("data.labels", "data.landing"): "the landing zone is searched recursively: labels files would be read as batches",
            ("data.landing", "data.labels"): "the labels folder is searched recursively: batch files would be read as labels",
        }
        for (inner, outer), reason in why.items():
            if inner not in located or outer not in located:
                continue
            (scheme_in, parts_in), (scheme_out, parts_out) = located[inner], located[outer]
            if scheme_in == scheme_out and parts_in[: len(parts_out)] == parts_out:
                relation = "is the same location as" if parts_in == parts_out else "is inside"
                raise ValueError(f"`{inner}` ({named[inner]}) {relation} `{outer}` ({named[outer]}); {reason}. Keep them apart")
        return self

    def resolve_paths(self, base: Path) -> Settings:
        """Returns a copy whose relative paths are anchored at ``base``."""

        def anchor(p: str | None) -> str | None:
            if p is None or _is_url(p) or Path(p).is_absolute():
                return p
            return str((base / p).resolve())

        data = self.data.model_copy(update={"landing": anchor(self.data.landing), "labels": anchor(self.data.labels)})
        return self.model_copy(update={"storage": anchor(self.storage), "data": data})


def _describe(error: ValidationError, source: str) -> str:
    lines = [f"invalid driftloop config {source}:"]
    for err in error.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "missing":
            lines.append(f"  {key}: required key is missing")
        elif err["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key")
        else:
            lines.append(f"  {key}: {err['msg']}")
    return "\n".join(lines)


def settings_from_dict(raw: dict, base: Path, source: str = "<dict>", check_metric: bool = True) -> Settings:
    """Validates a parsed config mapping; ``check_metric=False`` leaves ``model.metric`` unchecked
    against scikit-learn's scorers (for code that never scores, to skip importing scikit-learn).

    Raises:
        ConfigError: naming each wrong or missing key.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"invalid driftloop config {source}: the file must hold a mapping of keys")
    try:
        settings = Settings.model_validate(raw, context={"base": base, "check_metric": check_metric})
    except ValidationError as err:
        raise ConfigError(_describe(err, source)) from None
    return settings.resolve_paths(base).model_copy(update={"source": source})


def load_settings(path: str | os.PathLike | None = None, check_metric: bool = True) -> Settings:
    """Loads the config named by ``path``, else ``$DRIFTLOOP_CONFIG``, else the demo's file
    (``check_metric``: see ``settings_from_dict``).

    Raises:
        ConfigError: the file is missing, is not YAML, or breaks the contract (the key is named).
    """
    chosen = Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG).expanduser()
    if not chosen.is_file():
        raise ConfigError(f"driftloop config not found: {chosen} (set {CONFIG_ENV} to your YAML file)")
    try:
        raw = yaml.safe_load(chosen.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"driftloop config {chosen} is not valid YAML: {err}") from None
    return settings_from_dict(raw, chosen.resolve().parent, str(chosen), check_metric)


class DagSettings(BaseModel):
    """What DAG files need at parse time: schedules and the drift sensor's timing."""

    model_config = ConfigDict(extra="ignore")
    schedule: ScheduleSettings = ScheduleSettings()
    monitoring: MonitoringSettings = MonitoringSettings()


def load_dag_settings(path: str | os.PathLike | None = None) -> DagSettings:
    """Only the ``schedule`` and ``monitoring`` sections, cheaply, for DAG parse time.

    The full config (whose metric check imports scikit-learn) is loaded inside tasks.

    Raises:
        ConfigError: the file is missing or those sections are wrong.
    """
    chosen = Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG).expanduser()
    if not chosen.is_file():
        raise ConfigError(f"driftloop config not found: {chosen} (set {CONFIG_ENV} to your YAML file)")
    raw = yaml.safe_load(chosen.read_text()) or {}
    try:
        return DagSettings.model_validate({k: raw.get(k) or {} for k in ("schedule", "monitoring")})
    except ValidationError as err:
        raise ConfigError(_describe(err, str(chosen))) from None
