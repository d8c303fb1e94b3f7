"""The ``driftloop`` command: the gate and the drift check on files, without Airflow (by hand, in a
notebook, in a team's own CI), the retraining backtest, the bootstrap of a running Airflow, and the
version. A thin layer over ``include/``, as the DAGs are.

Exit codes: 0 passed (``check``) or no drift (``drift``); 1 failed or drift; 2 a usage, config or
input error (the message says which). Results go to standard output, progress to standard error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from importlib import metadata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from include.config import Settings

PACKAGES = ("apache-airflow", "mlflow", "great-expectations", "evidently", "scikit-learn", "deltalake")


class UsageError(Exception):
    """The command cannot run as asked (exit 2)."""


class _Progress:
    """One line per step on standard error, with the seconds since the command started."""

    def __init__(self, quiet: bool = False) -> None:
        self.started, self.quiet = time.perf_counter(), quiet

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(f"[driftloop {time.perf_counter() - self.started:5.1f}s] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return 2
    from include.config import ConfigError
    from include.errors import DriftloopError

    try:
        return args.run(args)
    except (UsageError, ConfigError) as err:
        print(f"driftloop {args.command}: {err}", file=sys.stderr)
        return 2
    except (DriftloopError, OSError, ValueError, KeyError) as err:
        print(f"driftloop {args.command}: {type(err).__name__}: {err}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="driftloop",
        description="The driftloop gate and drift check on CSV or Parquet files, without Airflow.",
        epilog="Exit codes: 0 passed / no drift, 1 failed / drift, 2 usage, config or input error.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = commands.add_parser(
        "check",
        help="run the data-quality gate on a file",
        description=(
            "Runs the gate that ingest runs on a CSV or Parquet file: the config's rules, plus the tolerances learnt "
            "from the champion's training window when MLFLOW_TRACKING_URI names an MLflow server that has a champion. "
            "Prints the report; exit 0 passed, 1 failed, 2 usage or config error."
        ),
    )
    check.add_argument("--input", required=True, help="a CSV or Parquet file (path or fsspec URL)")
    check.add_argument("--window", nargs=2, metavar=("START", "END"), help="the interval the rows belong to (default: the days they span)")
    check.add_argument("--no-champion", action="store_true", help="check with the config's rules only, without asking MLflow")
    check.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    check.set_defaults(run=_check)

    drift = commands.add_parser(
        "drift",
        help="the drift verdict between two files",
        description=(
            "Compares two CSV or Parquet files column by column with the methods monitor uses (Evidently's choice, or "
            "monitoring.columns in the config), on all rows. Exit 0 no drift, 1 drift, 2 usage or config error."
        ),
    )
    drift.add_argument("--reference", required=True, help="the rows to compare with (CSV or Parquet, path or fsspec URL)")
    drift.add_argument("--current", required=True, help="the rows to judge")
    drift.add_argument("--json", action="store_true", help="print the verdict record monitor stores, as JSON")
    drift.add_argument("--report", metavar="HTML", help="also write Evidently's HTML report (drawn from a sample) here")
    drift.set_defaults(run=_drift)

    boot = commands.add_parser(
        "bootstrap",
        help="start the loop on your data through a running Airflow",
        description=(
            "Drives a running Airflow (make up CONFIG=FILE, or any deployment) through its REST API: ingests the landing "
            "zone's history before --until window by window, trains the first champion on the last training.window, "
            "then ingests each later window, waits for its verdict, and prints the table of intervals. Run ids are "
            "fixed: a second bootstrap over the same dates starts nothing twice. Exit 0 done, 1 a run failed, 2 usage "
            "or config error."
        ),
    )
    boot.add_argument("--until", required=True, help="the first champion is trained on data before this date")
    boot.add_argument("--every", default="7D", help="window length of each ingest run (default 7D)")
    boot.add_argument("--start", help="first day to ingest (default: the landing zone's first event day)")
    boot.add_argument("--end", help="end of the last window (default: the day after the landing zone's last event)")
    boot.add_argument(
        "--airflow-url", default=os.environ.get("AIRFLOW_URL", "http://127.0.0.1:8080"), help="default $AIRFLOW_URL or the local one"
    )
    boot.add_argument("--user", default=os.environ.get("AIRFLOW_USER", "admin"))
    boot.set_defaults(run=_bootstrap)

    back = commands.add_parser(
        "backtest",
        help="replay history under retraining policies and compare them",
        description=(
            "Replays the landing zone interval by interval through the pipeline's own steps (gate, score, drift verdict, "
            "guard, retrain, promotion), in this process and without Airflow, once per policy: static (the first model "
            "only), every:N (a retrain every N intervals), drift (the config's drift rule), or parts joined by + "
            "(drift+every:12). The first model learns from the training.window before --start. Writes result.json, "
            "policies.png and summary.md into --out and prints the table. Exit 0 done, 2 usage, config or input error."
        ),
    )
    back.add_argument("--start", help="the first interval's start (default: the landing zone's first day plus training.window)")
    back.add_argument("--end", help="the last interval's end (default: the day after the landing zone's last event)")
    back.add_argument("--every", default="7D", help="interval length, as monitor sees batches (default 7D)")
    back.add_argument("--policies", default="static,every:4,drift", help="comma-separated (default static,every:4,drift)")
    back.add_argument("--out", required=True, help="folder for result.json, policies.png and summary.md")
    back.add_argument("--work", help="keep each policy's replay (storage and MLflow) here (default: a temporary folder, removed)")
    back.add_argument("--mlflow", action="store_true", help="also log a run per policy under one parent run to $MLFLOW_TRACKING_URI")
    back.add_argument("--verbose", action="store_true", help="the pipeline's own log lines too")
    back.set_defaults(run=_backtest)

    version = commands.add_parser("version", help="print driftloop's version and its main libraries'")
    version.set_defaults(run=_version)
    for sub in (check, drift, boot, back):
        sub.add_argument("--config", required=True, help="the driftloop YAML file (for bootstrap: the one the running Airflow uses)")
    for sub in (check, drift, back):
        sub.add_argument("--quiet", action="store_true", help="no progress lines on standard error")
    return parser


def _bootstrap(args) -> int:
    from include.airflow_api import Airflow
    from include.bootstrap import Driver, bootstrap
    from include.config import load_settings, parse_duration
    from include.storage import to_utc

    settings = load_settings(args.config)
    try:
        until = to_utc(args.until)
        start, end = (to_utc(v) if v else None for v in (args.start, args.end))
        every = parse_duration(args.every)
    except ValueError as err:
        raise UsageError(str(err)) from None
    password = os.environ.get("AIRFLOW_PASSWORD") or _local_password()
    if not password:
        raise UsageError("set AIRFLOW_PASSWORD (the local services' password is printed by make up)")
    driver = Driver(settings, Airflow(args.airflow_url, args.user, password), out=lambda text: print(text, flush=True))
    driver.say(f"Airflow {args.airflow_url} as {args.user}; config {settings.source or args.config}")
    try:
        bootstrap(driver, until, every, start, end)
    except RuntimeError as err:
        driver.print_table()
        print(f"driftloop bootstrap: {err}", file=sys.stderr)
        return 1
    except ValueError as err:
        raise UsageError(str(err)) from None
    driver.print_table()
    return 0


def _backtest(args) -> int:
    import logging
    import tempfile
    from pathlib import Path

    from include import backtest
    from include.bootstrap import landing_span, windows
    from include.config import load_settings, parse_duration
    from include.storage import Window, to_utc

    progress = _Progress(args.quiet)
    # without --verbose, the steps' own log lines (each task's, GX's, MLflow's warnings about
    # input examples) would bury the progress; the level is on the handler too because GX sets
    # INFO on loggers of its own
    level = logging.INFO if args.verbose else logging.ERROR
    handler = logging.StreamHandler()
    handler.setLevel(level)
    logging.basicConfig(level=level, handlers=[handler])  # nothing when logging is set up already
    if not args.verbose:
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    settings = load_settings(args.config)
    try:
        policies = backtest.parse_policies(args.policies)
        every = parse_duration(args.every)
        start, end = (to_utc(v) if v else None for v in (args.start, args.end))
    except ValueError as err:
        raise UsageError(str(err)) from None
    if start is None or end is None:
        span = landing_span(settings)
        if span is None:
            raise UsageError(f"no readable event time in {settings.data.landing}: nothing to replay")
        days = Window.whole_days(*span)
        start, end = start or days.start + settings.training.window, end or days.end
        progress(f"landing zone {settings.data.landing}: event times from {span[0].isoformat()} to {span[1].isoformat()}")
    if end <= start:
        raise UsageError(f"the replay [{start.isoformat()}, {end.isoformat()}) is empty: --end must be after --start")
    if args.work and Path(args.work).exists() and any(Path(args.work).iterdir()):
        # an earlier replay's verdicts, handled marks and versions would be taken up again (each
        # step is idempotent), and this replay would not be a replay of the policies from nothing
        raise UsageError(f"--work {args.work} is not empty: each replay starts from nothing; remove it or name another folder")
    spans = [Window(s, e) for s, e in windows(start, end, every)]
    progress(
        f"{len(spans)} intervals of {args.every} from {start:%Y-%m-%d} to {end:%Y-%m-%d}; policies {', '.join(p.name for p in policies)}"
    )
    with contextlib.ExitStack() as stack:
        work = Path(args.work) if args.work else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="driftloop-backtest-")))
        result = backtest.backtest(settings, spans, policies, work, progress)
    paths = backtest.write_outputs(result, Path(args.out))
    if args.mlflow:
        run_id = backtest.log_to_mlflow(result, paths)
        progress(f"logged to MLflow: experiment {settings.name}-backtest, run {run_id}")
    print(backtest.summary_table(result))
    progress(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


def _local_password() -> str | None:
    """The admin password ``make up`` generated for the local Airflow, if there is one."""
    from pathlib import Path

    generated = Path(__file__).resolve().parents[1] / ".services" / "airflow" / "simple_auth_manager_passwords.json.generated"
    return json.loads(generated.read_text())["admin"] if generated.exists() else None


def _version(args) -> int:
    print(f"driftloop {_installed('driftloop') or 'source checkout'}")
    for name in PACKAGES:
        print(f"  {name} {_installed(name) or 'not installed'}")
    return 0


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _read(path: str, progress: _Progress):
    from include.landing import read_table
    from include.storage import open_fs

    progress(f"reading {path}")
    fs, local = open_fs(path)
    if not fs.exists(local):
        raise UsageError(f"{path}: no such file")
    frame = read_table(fs, local)
    progress(f"read {len(frame):,} rows x {frame.shape[1]} columns from {path}")
    return frame


def _span(frame, settings: Settings, where: str, window: list[str] | None = None):
    """The event times parsed as ingest parses them, and the window: as given, or the whole days
    the readable times span."""
    from include.landing import parse_timestamps
    from include.storage import Window

    data = settings.data
    stamps = parse_timestamps(frame[data.timestamp], data.timestamp_format) if data.timestamp in frame.columns else None
    if window:
        try:
            return stamps, Window.parse(*window)
        except ValueError as err:
            raise UsageError(f"--window {' '.join(window)}: {err}") from None
    if stamps is None or stamps.isna().all():
        raise UsageError(f"{where} has no readable time in column {data.timestamp!r}; give --window START END")
    return stamps, Window.whole_days(stamps.min(), stamps.max())


def _check(args) -> int:
    from include import quality
    from include.config import load_settings

    progress = _Progress(args.quiet)
    settings = load_settings(args.config)
    frame = _read(args.input, progress)
    stamps, window = _span(frame, settings, args.input, args.window)
    if stamps is not None:
        frame[settings.data.timestamp] = stamps
    learned = None if args.no_champion else _champion_profile(settings, progress)
    progress(f"checking {len(frame):,} rows for [{window.start.isoformat()}, {window.end.isoformat()})")
    try:
        report = quality.validate(frame, settings.data, window, learned, settings.quality, "check")
    except quality.DataQualityError as err:
        report = err.report
    print(json.dumps(report, indent=2, default=str) if args.json else quality.report_markdown(report))
    progress("failed" if report["failed"] else "passed")
    return 1 if report["failed"] else 0


def _champion_profile(settings: Settings, progress: _Progress) -> dict | None:
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        progress("MLFLOW_TRACKING_URI is not set: checking with the config's rules only")
        return None
    from include import registry, tracking

    registry.configure_mlflow(settings.mlflow)
    progress(f"asking MLflow at {registry.strip_userinfo(os.environ['MLFLOW_TRACKING_URI'])} for @champion's profile")
    try:
        learned = tracking.champion_profile(settings.name)
    except Exception as err:  # noqa: BLE001 - any failure to reach MLflow is a usage problem here
        raise UsageError(f"MLflow did not answer ({type(err).__name__}: {err}); use --no-champion to check without it") from None
    progress("no champion yet: the config's rules only" if learned is None else f"learned tolerances of {learned.get('window')}")
    return learned


def _drift(args) -> int:
    from include import drift, monitoring
    from include.config import load_settings

    progress = _Progress(args.quiet)
    settings = load_settings(args.config)
    data = settings.data
    reference = _read(args.reference, progress)
    current = _read(args.current, progress)
    missing = [c for c in data.features if c not in reference.columns and c not in current.columns]
    if missing:
        raise UsageError(f"columns of the config in neither file: {missing}")
    progress(f"comparing {len(data.features)} columns on {len(reference):,} reference and {len(current):,} current rows")
    columns = drift.column_drift(reference, current, data, settings.monitoring.columns)
    decision = drift.drift_decision(columns, settings.monitoring.drift_share)
    outputs = {
        "prediction_drift": monitoring.unjudged("no_model", "two files were compared; monitor compares the champion's scores"),
        "target_drift": monitoring.target_drift(settings, _labels(reference, settings, "reference"), _labels(current, settings, "current")),
    }
    if args.report:
        progress(f"drawing Evidently's report from up to {settings.monitoring.report_rows:,} rows a side")
        html = drift.drift_report(reference, current, data, columns, settings.monitoring.drift_share, settings.monitoring.report_rows)
        with open(args.report, "w", encoding="utf-8") as out:
            out.write(html)
        progress(f"report written to {args.report}")
    spans = {}
    for name, frame, path in (("current", current, args.current), ("reference", reference, args.reference)):
        try:
            spans[name] = _span(frame, settings, path)[1].as_dict()
        except UsageError:
            spans[name] = {"start": None, "end": None}
    verdict = monitoring.verdict_record(
        spans["current"],
        len(current),
        len(reference),
        decision,
        columns,
        outputs,
        settings.model.metric,
        reference_window=spans["reference"],
        labelled_rows=int(current[data.target].notna().sum()) if data.target in current.columns else 0,
        report=args.report,
    )
    print(json.dumps(verdict, indent=2, default=str) if args.json else _drift_table(verdict, settings, args))
    progress("drift" if decision["drift"] else "no drift")
    return 1 if decision["drift"] else 0


def _labels(frame, settings: Settings, side: str):
    import pandas as pd

    from include import monitoring

    data = settings.data
    if data.target not in frame.columns:
        return pd.Series([], dtype="float64")
    rows = frame[frame[data.target].notna()]
    if data.id not in rows.columns:
        rows = rows.assign(**{data.id: rows.index})
    return monitoring.label_values(rows, settings, f"the {side} file's labelled rows")


def _drift_table(verdict: dict, settings: Settings, args) -> str:
    from include.config import target_kind

    data = settings.data
    kinds = {**dict.fromkeys(data.numeric, "numerical"), **dict.fromkeys(data.categorical, "categorical")}
    rows = [("column", "kind", "method", "score", "threshold", "drifted", "note")]

    def line(name: str, kind: str, r: dict) -> tuple:
        drifted = {True: "DRIFT", False: "no", None: "-"}[r["drifted"]]
        score = f"{r['score']:.4g}" if r["score"] is not None else "-"
        threshold = f"{r['threshold']:g}" if r["threshold"] is not None else "-"
        note = r["status"] if r["status"] != "ok" else ""
        return (name, kind, r["method"] or "-", score, threshold, drifted, note)

    for col in data.features:
        rows.append(line(col, kinds[col], verdict["columns"][col]))
    rows.append(line("(prediction)", "numerical", verdict["prediction_drift"]))
    rows.append(line(f"(target {data.target})", target_kind(settings.model.task), verdict["target_drift"]))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    text = [
        f"current {args.current} ({verdict['rows']:,} rows) against reference {args.reference} ({verdict['reference_rows']:,} rows)",
        "",
    ]
    text += ["  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    judged = len(data.features) - sum(1 for c in data.features if verdict["columns"][c]["drifted"] is None)
    text += [
        "",
        f"{verdict['drifted_columns']} of {judged} judged columns drifted: share {verdict['drift_share']:.2f} "
        f"(drift from {settings.monitoring.drift_share:g}): {'DRIFT' if verdict['drift'] else 'no drift'}",
    ]
    if args.report:
        text.append(f"report: {args.report}")
    return "\n".join(text)


if __name__ == "__main__":
    sys.exit(main())
