import subprocess
import sys
import textwrap
from datetime import timedelta

import pytest

from include.config import ConfigError, load_dag_settings, load_settings, parse_duration, settings_from_dict

MINIMAL = textwrap.dedent(
    """
    name: car_loans            # MLflow experiment and registered-model name
    storage: .driftloop        # root for curated data, quarantine, predictions, reports (path or fsspec URL)
    data:
      landing: data/landing    # where batch files (*.csv, *.parquet) land (path or fsspec URL)
      timestamp: timestamp     # event-time column
      id: id                   # unique row id
      target: repaid           # label column (may be absent from batches when labels arrive later)
      labels: null             # optional folder of later-arriving labels: files with id + target
      numeric: [car_value, debt_to_income_ratio]
      categorical: [salary_range]
    model:
      task: classification     # or regression
      metric: roc_auc          # primary metric, a scikit-learn scorer name
    training:
      window: 90D              # history each retrain uses
      folds: 5                 # time-based cross-validation folds
    promotion:
      mode: auto               # auto | approval
    monitoring:
      drift_share: 0.5         # share of drifted features that makes a batch "drifted"
      cooldown: 7D             # no drift-started retrain sooner than this after the last one
    """
)


def test_minimal_contract_form_is_accepted_as_written(tmp_path):
    path = tmp_path / "car_loans.yaml"
    path.write_text(MINIMAL)
    s = load_settings(path)
    assert s.name == "car_loans"
    assert s.training.window == timedelta(days=90) and s.training.folds == 5
    assert s.monitoring.cooldown == timedelta(days=7) and s.monitoring.drift_share == 0.5
    assert s.data.features == ["car_value", "debt_to_income_ratio", "salary_range"]
    # relative paths are anchored at the YAML file's folder
    assert s.storage == str(tmp_path / ".driftloop")
    assert s.data.landing == str(tmp_path / "data" / "landing")


def test_env_variable_chooses_the_file(tmp_path, monkeypatch):
    path = tmp_path / "x.yaml"
    path.write_text(MINIMAL.replace("car_loans", "other_model", 1))
    monkeypatch.setenv("DRIFTLOOP_CONFIG", str(path))
    assert load_settings().name == "other_model"


def test_default_is_the_demo_file(monkeypatch):
    monkeypatch.delenv("DRIFTLOOP_CONFIG", raising=False)
    s = load_settings()
    assert s.name == "car_loans" and s.source.endswith("include/demo.yaml")


def test_urls_are_kept_as_written(tmp_path):
    raw = __import__("yaml").safe_load(MINIMAL)
    raw["storage"] = "memory://bucket/driftloop"
    assert settings_from_dict(raw, tmp_path).storage == "memory://bucket/driftloop"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r["data"].pop("timestamp"), r"data\.timestamp: required key is missing"),
        (lambda r: r.pop("model"), r"model: required key is missing"),
        (lambda r: r["training"].update(window="ninety days"), r"training\.window: .*not a duration"),
        (lambda r: r["model"].update(metric="accuracy_typo"), r"model\.metric: .*not a scikit-learn scorer"),
        (lambda r: r["promotion"].update(mode="sometimes"), r"promotion\.mode"),
        (lambda r: r["monitoring"].update(drift_sharee=0.3), r"monitoring\.drift_sharee: unknown key"),
        (lambda r: r["data"].update(numeric=["id"]), r"columns named twice"),
        (lambda r: r["training"].update(folds=1), r"training\.folds"),
        (lambda r: r["monitoring"].update(rollback="sometimes"), r"monitoring\.rollback"),
        (lambda r: r.update(alerts={"on": ["promotion", "email"]}), r"alerts\.on\.1"),
        (
            lambda r: r["monitoring"].update(columns={"car_value": {"method": "wasserstien"}}),
            r"monitoring\.columns\.car_value\.method: .*unknown drift method 'wasserstien'; Evidently's methods are anderson, ",
        ),
        (
            lambda r: r["monitoring"].update(columns={"salary_range": {"method": "wasserstein"}}),
            r"monitoring\.columns\.salary_range: 'wasserstein' does not take categorical columns; methods that do: chisquare, ",
        ),
        (lambda r: r["monitoring"].update(columns={"car_valeu": {"threshold": 0.2}}), r"'car_valeu' is not a feature"),
        (lambda r: r["monitoring"].update(columns={"car_value": {"threshold": 0}}), r"threshold: Input should be greater than 0"),
        (lambda r: r["monitoring"].update(target={"method": "ks"}), r"monitoring\.target: 'ks' does not take categorical columns"),
        (lambda r: r["monitoring"].update(prediction={"method": "TVD"}), r"monitoring\.prediction: 'TVD' does not take numerical columns"),
    ],
)
def test_wrong_or_incomplete_config_names_the_key(tmp_path, edit, message):
    raw = __import__("yaml").safe_load(MINIMAL)
    edit(raw)
    with pytest.raises(ConfigError, match=message):
        settings_from_dict(raw, tmp_path, "test.yaml")


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad)


@pytest.mark.parametrize(
    ("text", "expected"), [("90D", timedelta(days=90)), ("12h", timedelta(hours=12)), ("2W", timedelta(weeks=2)), (3, timedelta(days=3))]
)
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["0D", "D", "90 days", "-1D"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_drift_methods_per_column_are_read(tmp_path):
    raw = __import__("yaml").safe_load(MINIMAL)
    raw["monitoring"]["columns"] = {"car_value": {"method": "psi", "threshold": 0.2}, "salary_range": {"threshold": 0.3}}
    raw["monitoring"]["prediction"] = {"method": "ks"}
    s = settings_from_dict(raw, tmp_path)
    assert (s.monitoring.columns["car_value"].method, s.monitoring.columns["car_value"].threshold) == ("psi", 0.2)
    assert (s.monitoring.columns["salary_range"].method, s.monitoring.columns["salary_range"].threshold) == (None, 0.3)
    assert s.monitoring.prediction.method == "ks" and s.monitoring.target.method is None


def test_dag_settings_load_without_heavy_imports(tmp_path):
    """DAG files read the schedule at parse time: that must not import scikit-learn or pandas."""
    code = (
        "import sys; from include.config import load_dag_settings; s = load_dag_settings(); "
        "print(s.schedule.ingest, sorted(m for m in ('sklearn', 'pandas', 'mlflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONPATH": ".", "PATH": ""})
    assert out.stdout.split() == ["None", "[]"]


def test_tasks_that_never_score_load_the_config_without_scikit_learn(tmp_path):
    """The gate and publish tasks load the full config without importing scikit-learn (2 s a
    task); the metric is then unchecked, and checked by default."""
    path = tmp_path / "x.yaml"
    path.write_text(MINIMAL.replace("metric: roc_auc", "metric: roc_acu"))
    code = (
        "import sys; from include.config import load_settings; "
        f"s = load_settings({str(path)!r}, check_metric=False); "
        "print(s.model.metric, 'sklearn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONPATH": ".", "PATH": ""})
    assert out.stdout.split() == ["roc_acu", "False"]
    with pytest.raises(ConfigError, match=r"model\.metric: .*'roc_acu' is not a scikit-learn scorer"):
        load_settings(path)


def test_dag_settings_name_bad_keys(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text(MINIMAL + "schedule:\n  ingest: 5\n  when: never\n")
    with pytest.raises(ConfigError, match=r"schedule\.when: unknown key"):
        load_dag_settings(path)


def with_locations(storage: str, landing: str, labels: str | None = None) -> dict:
    raw = __import__("yaml").safe_load(MINIMAL)
    raw["storage"] = storage
    raw["data"].update(landing=landing, labels=labels)
    return raw


@pytest.mark.parametrize(
    ("storage", "landing", "labels", "message"),
    [
        ("/data/landing/store", "/data/landing", None, r"`storage` \(/data/landing/store\) is inside `data\.landing` \(/data/landing\)"),
        ("/data/landing", "/data/landing/", None, r"`storage` \(/data/landing\) is the same location as `data\.landing`"),
        ("/data/store", "/data/store/landing", None, r"`data\.landing` \(/data/store/landing\) is inside `storage` \(/data/store\)"),
        ("/data/store", "/data/landing", "/data/store/labels", r"`data\.labels` \(/data/store/labels\) is inside `storage`"),
        ("/data/labels/store", "/data/landing", "/data/labels", r"`storage` \(/data/labels/store\) is inside `data\.labels`"),
        ("/data/store", "/data/landing", "/data/landing/labels", r"`data\.labels` \(/data/landing/labels\) is inside `data\.landing`"),
        ("/data/x/../landing/s", "/data/landing", None, r"`storage` \(/data/x/\.\./landing/s\) is inside `data\.landing`"),
        ("s3://lake/landing/store", "s3://lake/landing", None, r"`storage` \(s3://lake/landing/store\) is inside `data\.landing`"),
        ("s3a://lake/landing/store", "s3://lake/landing/", None, r"is inside `data\.landing`"),
        ("driftloop/store", "driftloop", None, r"`storage` \(driftloop/store\) is inside `data\.landing` \(driftloop\)"),
    ],
)
def test_storage_and_input_folders_must_not_nest(tmp_path, storage, landing, labels, message):
    with pytest.raises(ConfigError, match=message):
        settings_from_dict(with_locations(storage, landing, labels), tmp_path, "test.yaml")


@pytest.mark.parametrize(
    ("storage", "landing", "labels"),
    [
        ("/data/landing2", "/data/landing", None),  # a common prefix of characters is not a folder inside another
        ("/data/landing", "/data/landing2", "/data/landing-labels"),
        ("s3://other/landing/store", "s3://lake/landing", None),  # another bucket
        ("memory://lake/landing/store", "s3://lake/landing", None),  # another store
        ("/data/store", "/data/landing", "/data/labels"),
    ],
)
def test_side_by_side_locations_are_accepted(tmp_path, storage, landing, labels):
    s = settings_from_dict(with_locations(storage, landing, labels), tmp_path, "test.yaml")
    assert (s.storage, s.data.landing, s.data.labels) == (storage, landing, labels)


def test_relative_and_absolute_locations_compare_once_anchored(tmp_path):
    """With the config file's folder as the validation context's base, a relative path is compared
    with an absolute one; without it, only relative paths are compared with each other."""
    from include.config import Settings

    raw = with_locations(str(tmp_path / "landing" / "store"), "landing")
    with pytest.raises(ValueError, match=r"`storage` \(.*/landing/store\) is inside `data\.landing` \(landing\)"):
        Settings.model_validate(raw, context={"base": tmp_path})
    assert Settings.model_validate(raw).storage == raw["storage"]


def test_folds_at_a_time_is_a_count_or_one_per_core(tmp_path):
    raw = __import__("yaml").safe_load(MINIMAL)
    assert settings_from_dict(raw, tmp_path).training.n_jobs == 1
    raw["training"]["n_jobs"] = -1
    assert settings_from_dict(raw, tmp_path).training.n_jobs == -1
    raw["training"]["n_jobs"] = 0
    with pytest.raises(ConfigError, match=r"training\.n_jobs: .*not 0"):
        settings_from_dict(raw, tmp_path)
