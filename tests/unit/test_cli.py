"""The ``driftloop`` command on files: outputs and exit codes (0 passed / no drift, 1 failed / drift,
2 usage, config or input error). The champion's tolerances in ``check`` are tested against a real
MLflow server in tests/integration/test_retrain.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from include import cli, monitoring
from tests.conftest import write_config


@pytest.fixture(scope="module")
def stream():
    """The demo's stream (300 rows a day): references of over 1,000 rows, as in production."""
    from datetime import datetime

    from include.simulator import StreamSpec, simulate

    return simulate(StreamSpec(start=datetime(2026, 1, 5), days=42, drift_start=datetime(2026, 2, 2)))


@pytest.fixture
def files(tmp_path, stream):
    """Two stable weeks and one drifted week of the demo's stream, and a config for them."""
    weeks = {
        "A.parquet": ("2026-01-05", "2026-01-12"),
        "B.parquet": ("2026-01-12", "2026-01-19"),
        "C.csv": ("2026-02-09", "2026-02-16"),
    }
    for name, (start, end) in weeks.items():
        rows = stream[(stream.timestamp >= start) & (stream.timestamp < end)]
        assert len(rows) > 1000
        (rows.to_csv if name.endswith(".csv") else rows.to_parquet)(tmp_path / name, index=False)
    return tmp_path, write_config(tmp_path)


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_drift_between_two_stable_weeks_is_no_drift_exit_0(files, capsys):
    folder, config = files
    code, out, err = run(capsys, "drift", "--config", config, "--reference", folder / "A.parquet", "--current", folder / "B.parquet")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].endswith("B.parquet (2,070 rows) against reference " + str(folder / "A.parquet") + " (2,078 rows)")
    header = lines[2].split()
    assert header == ["column", "kind", "method", "score", "threshold", "drifted", "note"]
    car = next(line.split() for line in lines if line.startswith("car_value"))
    assert car[:2] == ["car_value", "numerical"] and car[2] == "wasserstein" and car[4] == "0.1" and car[5] == "no"
    assert lines[-1].startswith("0 of 8 judged columns drifted: share 0.00 (drift from 0.5): no drift")
    assert "comparing 8 columns on 2,078 reference and 2,070 current rows" in err


def test_drift_into_the_shifted_weeks_is_drift_exit_1_and_json_is_the_verdict_record(files, capsys):
    folder, config = files
    code, out, _ = run(capsys, "drift", "--config", config, "--reference", folder / "A.parquet", "--current", folder / "C.csv", "--json")
    assert code == 1
    verdict = json.loads(out)
    assert tuple(verdict) == monitoring.VERDICT_KEYS
    assert verdict["drift"] is True and {"car_value", "debt_to_income_ratio", "credit_score"} <= set(verdict["drifted"])
    assert verdict["start"] == "2026-02-09T00:00:00+00:00" and verdict["reference_window"]["start"] == "2026-01-05T00:00:00+00:00"
    assert verdict["rows"] == 2026 and verdict["reference_rows"] == 2078 and verdict["labelled_rows"] == 2026
    column = verdict["columns"]["car_value"]
    assert (column["method"], column["method_name"], column["threshold"], column["drifted"]) == (
        "wasserstein",
        "Wasserstein distance (normed)",
        0.1,
        True,
    )
    assert verdict["prediction_drift"]["status"] == "no_model"
    assert verdict["target_drift"]["method"] == "jensenshannon" and verdict["target_drift"]["drifted"] is True


def test_drift_writes_evidentlys_report_and_reads_the_configs_methods(files, capsys):
    folder, _ = files
    config = write_config(folder, monitoring__columns={"car_value": {"method": "psi", "threshold": 5.0}})
    report = folder / "report.html"
    argv = ["drift", "--config", config, "--reference", folder / "A.parquet", "--current", folder / "C.csv", "--report", report]
    code, out, _ = run(capsys, *argv, "--json")
    verdict = json.loads(out)
    assert code == 1 and verdict["report"] == str(report)
    assert (verdict["columns"]["car_value"]["method"], verdict["columns"]["car_value"]["drifted"]) == ("psi", False)
    html = report.read_text()
    assert "the verdict (drifted columns, scores) was computed on all rows" in html and "PSI" in html


def test_check_passes_a_clean_file_and_fails_a_bad_one_naming_column_rule_and_numbers(files, capsys, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    folder, config = files
    code, out, err = run(capsys, "check", "--config", config, "--input", folder / "C.csv")
    assert code == 0 and out.startswith("# check gate: passed")
    assert "window: `2026-02-09T00:00:00+00:00` to `2026-02-16T00:00:00+00:00`" in out
    assert "MLFLOW_TRACKING_URI is not set" in err
    import pandas as pd

    bad = pd.read_csv(folder / "C.csv")
    bad = pd.concat([bad, bad.head(2)])
    bad.to_csv(folder / "bad.csv", index=False)
    code, out, _ = run(capsys, "check", "--config", config, "--input", folder / "bad.csv", "--quiet")
    assert code == 1 and out.startswith("# check gate: FAILED")
    assert "| id | expect_column_values_to_be_unique | config | FAILED | 4 of 2028 rows (0.20%) break it" in out
    code, out, _ = run(capsys, "check", "--config", config, "--input", folder / "bad.csv", "--quiet", "--json")
    report = json.loads(out)
    assert code == 1 and report["failed"] == 1 and report["rows"] == 2028
    # rows outside the window given are the gate's to name
    code, out, _ = run(capsys, "check", "--config", config, "--input", folder / "C.csv", "--window", "2026-02-09", "2026-02-10", "--quiet")
    assert code == 1 and "| timestamp | expect_column_values_to_be_between | config | FAILED |" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check", "--config", "{folder}/nope.yaml", "--input", "{folder}/C.csv"], "driftloop config not found"),
        (["check", "--config", "{config}", "--input", "{folder}/missing.csv"], "missing.csv: no such file"),
        (["check", "--config", "{config}", "--input", "{folder}/C.csv", "--window", "soon", "later"], "--window soon later"),
        (
            ["drift", "--config", "{config}", "--reference", "{folder}/A.parquet", "--current", "{folder}/nope.csv"],
            "nope.csv: no such file",
        ),
        (
            ["drift", "--config", "{folder}/bad.yaml", "--reference", "{folder}/A.parquet", "--current", "{folder}/B.parquet"],
            "monitoring.columns",
        ),
    ],
)
def test_usage_config_and_input_errors_exit_2_with_a_message(files, capsys, argv, message):
    folder, config = files
    (folder / "bad.yaml").write_text(config.read_text() + "\n" + "monitoring: {columns: {region: {method: ks}}}\n")
    code, _, err = run(capsys, *(a.format(folder=folder, config=config) for a in argv))
    assert code == 2 and message in err


def test_argparse_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["drift", "--config", "x.yaml"])
    assert exit_.value.code == 2 and "--reference" in capsys.readouterr().err
    assert cli.main([]) == 2


def test_the_console_command_is_installed_with_help_and_version():
    """``make install`` installs the project (``[project.scripts]``): the command sits next to the
    interpreter of the virtual environment."""
    command = Path(sys.executable).parent / "driftloop"
    assert command.exists(), "run make install: the driftloop command is not installed"
    out = subprocess.run([command, "version"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("driftloop 0.1.0") and "evidently 0.7." in out and "apache-airflow 3." in out
    for sub in ("check", "drift"):
        help_text = subprocess.run([command, sub, "--help"], capture_output=True, text=True, check=True).stdout
        assert "--config" in help_text and "exit 0" in help_text.lower()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--policies", "static,weekly"], "unknown policy 'weekly'"),
        (["--start", "2026-02-02", "--end", "2026-01-05"], "--end must be after --start"),
        (["--every", "7 days"], "is not a duration"),
        (["--start", "2026-02-02", "--end", "soon"], "soon"),
        (["--start", "2026-01-05", "--end", "2026-02-02", "--work", "."], "is not empty: each replay starts from nothing"),
    ],
)
def test_backtest_usage_errors_exit_2_before_replaying(tmp_path, capsys, extra, message):
    config = write_config(tmp_path)
    code = cli.main(["backtest", "--config", str(config), "--out", str(tmp_path / "out"), "--quiet", *extra])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_backtest_of_an_empty_or_missing_landing_zone_says_so(tmp_path, capsys):
    config = write_config(tmp_path)
    assert cli.main(["backtest", "--config", str(config), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert "landing zone" in (err := capsys.readouterr().err) and "does not exist" in err
    (tmp_path / "landing").mkdir(exist_ok=True)
    assert cli.main(["backtest", "--config", str(config), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert "no readable event time" in capsys.readouterr().err
