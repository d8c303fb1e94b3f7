"""The demo: plays a simulated stream of car-loan applications through the real loop.

Starts MLflow and ``airflow standalone`` (scripts/services.py), writes ten weeks of daily batch
files into the landing zone (a rate shock from week 7, a corrupted export in week 10), then drives
the scheduler through its REST API exactly as a user would from the UI:

1. ``ingest`` the first four weeks, ``retrain`` (reason ``initial``): the first champion.
2. ``ingest`` weeks 5 to 9 one at a time; each curated event starts ``monitor`` (scheduled by the
   Asset), each verdict wakes ``drift_watch``; when two drifted weeks follow each other the
   DriftSensor starts ``retrain`` with ``reason=drift``, which promotes a new champion.
3. ``ingest`` week 10, whose batch is corrupted: the gate fails and quarantines it.

It ends with a table of the intervals and where to look. Everything runs until ``make stop``.

With ``--cluster`` (``make demo CLUSTER=1``) the same play runs on the cluster of ``make cluster``
(scripts/cluster.py): Celery workers, logins, storage and landing on the object store. The
cluster keeps running; the demo's earlier runs, model and data there are replaced.

    python scripts/demo.py [--home DIR] [--config FILE] [--airflow-port N] [--mlflow-port N] [--stop]
    python scripts/demo.py --cluster
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from services import Services, start, stop  # noqa: E402

from include.airflow_api import Airflow  # noqa: E402
from include.bootstrap import Driver, Row  # noqa: E402
from include.storage import drift_retrain_run_id  # noqa: E402

START = datetime(2026, 1, 5)  # a Monday
HISTORY_WEEKS = 4
MONITORED_WEEKS = 5
DRIFT_WEEK = 7  # the rate shock starts on the first day of week 7
BAD_WEEK = 10
ROWS_PER_DAY = 300


def week(n: int) -> tuple[datetime, datetime]:
    """The half-open span of week ``n`` (1-based)."""
    s = START + timedelta(weeks=n - 1)
    return s, s + timedelta(weeks=1)


@dataclass
class Demo(Driver):
    """The demo's play on top of the bootstrap's driver (same run ids, verdicts and table)."""

    svc: Services | None = None
    prefix: str = "demo"

    # -- setup -----------------------------------------------------------------------------
    def write_stream(self) -> None:
        from include.simulator import StreamSpec, corrupt, simulate, write_daily_batches

        days = 7 * (HISTORY_WEEKS + MONITORED_WEEKS + 1)
        frame = simulate(StreamSpec(start=START, days=days, drift_start=week(DRIFT_WEEK)[0], rows_per_day=ROWS_PER_DAY))
        bad_start, _ = week(BAD_WEEK)
        good = frame[frame.timestamp < bad_start.strftime("%Y-%m-%dT00:00:00Z")]
        bad = corrupt(frame[frame.timestamp >= bad_start.strftime("%Y-%m-%dT00:00:00Z")])
        files = write_daily_batches(good, self.settings.data.landing) + write_daily_batches(bad, self.settings.data.landing)
        self.say(f"simulated {len(frame)} applications in {len(files)} daily files -> {self.settings.data.landing}")

    # -- steps -------------------------------------------------------------------------------
    def play(self) -> None:
        hist_start, hist_end = week(1)[0], week(HISTORY_WEEKS)[1]
        state, gated = self.ingest(hist_start, hist_end)
        if state != "success":
            raise RuntimeError("ingest of the history failed; see the Airflow UI")
        self.say(f"ingest {hist_start:%Y-%m-%d}..{hist_end:%Y-%m-%d}: {gated['rows']} rows passed the gate")
        run_id, state = self.retrain(hist_end, f"{7 * HISTORY_WEEKS}D", "initial")
        if state != "success":
            raise RuntimeError("the initial retrain failed; see the Airflow UI")
        summary = self.retrain_summary(run_id)
        self.say(f"retrain (initial): {summary}")
        history = f"{hist_start:%Y-%m-%d}..{hist_end:%Y-%m-%d}"
        self.table.append(Row(history, gated["rows"], "passed", None, None, 1, f"history; retrain initial: {summary.split(':')[0]}"))

        drift_run = None
        for n in range(HISTORY_WEEKS + 1, HISTORY_WEEKS + MONITORED_WEEKS + 1):
            s, e = week(n)
            state, gated = self.ingest(s, e)
            verdict = self.wait_for_verdict(s, e)
            row = self.verdict_row(verdict)
            self.say(
                f"week {n}: drift share {verdict['drift_share']:.2f}, live {self.settings.model.metric} {verdict['live_metric']:.3f}, champion v{verdict['model_version']}"
            )
            expected = drift_retrain_run_id(e)
            if verdict["drift"] and drift_run is None and self.drift_expected(n):
                self.say(f"waiting for drift_watch to start retrain {expected} ...")
                drift_run = self.wait_for_drift_retrain(expected)
                summary = self.retrain_summary(drift_run)
                self.say(f"retrain (drift): {summary}")
                row.note += f"; retrain reason=drift: {summary.split(':')[0]}"
            self.table.append(row)

        s, e = week(BAD_WEEK)
        state, _ = self.ingest(s, e)
        from include.quarantine import Quarantine
        from include.storage import Storage, Window

        storage = Storage.from_settings(self.settings)
        entries = [q for q in Quarantine(storage).entries() if q["id"].endswith(Window(s, e).key)]
        report = storage.path("quarantine", entries[-1]["id"], "report.md") if entries else "(no quarantine entry)"
        self.table.append(Row(f"{s:%Y-%m-%d}..{e:%Y-%m-%d}", None, "QUARANTINED" if state == "failed" else state, note=f"report: {report}"))
        self.say(f"week {BAD_WEEK} (corrupted export): ingest {state}; quarantine report {report}")

    def drift_expected(self, n: int) -> bool:
        # the demo config asks for `consecutive` drifted weeks before a retrain
        return n >= DRIFT_WEEK + self.settings.monitoring.consecutive - 1

    def wait_for_drift_retrain(self, run_id: str, timeout: float = 600) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.airflow.run("retrain", run_id):
                if self.airflow.wait("retrain", run_id, timeout=deadline - time.monotonic()) != "success":
                    raise RuntimeError(f"retrain {run_id} failed; see the Airflow UI")
                return run_id
            time.sleep(3)
        raise TimeoutError(f"drift_watch did not start retrain {run_id} within {timeout:.0f} s")

    # -- report ----------------------------------------------------------------------------
    def print_where(self) -> None:
        store = self.settings.storage
        print(
            f"""
Airflow   {self.svc.airflow_url}   user admin, password {self.svc.password()}
          (generated; kept in {self.svc.password_file})
MLflow    {self.svc.mlflow_url}   experiments '{self.settings.name}' and '{self.settings.name}-monitoring', model '{self.settings.name}'{self.svc.mlflow_login}
Model health  {self.svc.evidently_url}   Evidently's UI: project '{self.settings.name}', one snapshot per monitored week
Reports   {store}/reports/drift_over_time.png   (drift share and live metric per week)
          {store}/reports/<interval>/drift.html  (Evidently)
          {store}/quarantine/<NNNN>__<interval>/report.md
Alerts    {store}/alerts/   (to also POST them to a webhook: AIRFLOW_CONN_DRIFTLOOP_ALERTS=https://...)
Took {time.monotonic() - self.started:.0f} s. Services keep running; `{self.svc.stop_command}` stops them."""
        )
        tis = self.airflow.task_instances()  # one listing for both lines
        runs, count, seconds = self.airflow.task_time(tis)
        print(f"Airflow ran {runs} DAG runs, {count} task instances; their tasks took {seconds:.0f} s in all.")
        if self.svc.stop_command == "make cluster-stop":
            hosts = ", ".join(f"{host} {n}" for host, n in self.airflow.task_hosts(tis).items())
            print(f"Task instances per worker: {hosts}")


@dataclass
class OnCluster:
    """Where the demo runs with ``--cluster``: the cluster of scripts/cluster.py, its logins."""

    cluster: object
    creds: dict

    home = property(lambda self: self.cluster.home)
    airflow_home = property(lambda self: self.cluster.run_dir)  # the services' logs
    airflow_url = property(lambda self: self.creds["AIRFLOW_URL"])
    mlflow_url = property(lambda self: self.creds["MLFLOW_URL"])
    evidently_url = property(lambda self: self.creds.get("EVIDENTLY_URL", "(not run by this cluster)"))
    password_file = property(lambda self: self.cluster.home / "credentials.env")
    stop_command = "make cluster-stop"

    def password(self) -> str:
        return self.creds["AIRFLOW_PASSWORD"]

    @property
    def mlflow_login(self) -> str:
        return f"\n          user {self.creds['MLFLOW_USER']}, password {self.creds['MLFLOW_PASSWORD']}"


def reset_on_cluster(demo: Demo) -> None:
    """Makes a replay on the cluster start from nothing, as a local demo does: the demo's DAG runs
    (their ids are reused), its registered model and runs in MLflow, and its storage and landing on
    the object store (only if the demo made them: a marker object)."""
    from mlflow import MlflowClient

    from include.storage import open_fs

    for dag_id in ("ingest", "monitor", "drift_watch", "retrain", "rollback"):
        demo.airflow.delete_runs(dag_id, keep_running=dag_id == "drift_watch")  # the sensor keeps watching
    client = MlflowClient()
    name = demo.settings.name
    if client.search_registered_models(f"name = '{name}'"):
        client.delete_registered_model(name)
    for experiment in (name, f"{name}-monitoring"):
        found = client.get_experiment_by_name(experiment)
        if found is not None and found.lifecycle_stage == "active":
            for run in client.search_runs([found.experiment_id], max_results=5000):
                client.delete_run(run.info.run_id)
    for url in (demo.settings.storage, demo.settings.data.landing):
        fs, path = open_fs(url)
        if fs.exists(path) and not fs.exists(f"{path}/.driftloop-demo"):
            raise SystemExit(f"{url} exists and was not made by the demo; choose another location in {demo.settings.source}")
        if fs.exists(path):
            fs.rm(path, recursive=True)
        fs.pipe(f"{path}/.driftloop-demo", b"made by scripts/demo.py; wiped by the next demo on the cluster\n")


def main_on_cluster(demo_args) -> Demo:
    import os

    import cluster as cluster_script

    from include.config import load_settings

    cluster = cluster_script.from_env()
    creds_file = cluster.home / "credentials.env"
    if not creds_file.exists() or not cluster.status()["airflow-api-server"]:
        raise SystemExit("no cluster is running: start it with `make cluster`")
    os.environ.update(cluster.client_env())  # the object store and MLflow, as the workers reach them
    creds = cluster_script.read_env(creds_file)
    settings = load_settings(cluster.config_file)
    demo = Demo(settings, None, svc=OnCluster(cluster, creds))
    demo.airflow = Airflow(creds["AIRFLOW_URL"], creds["AIRFLOW_USER"], creds["AIRFLOW_PASSWORD"])
    demo.wait_for_dags()
    reset_on_cluster(demo)
    demo.say(f"playing the stream on the cluster ({creds['AIRFLOW_URL']}, MLflow {creds['MLFLOW_URL']}, storage {settings.storage})")
    demo.write_stream()
    demo.play()
    demo.print_table()
    demo.print_where()
    return demo


def main(argv: list[str] | None = None) -> Demo:
    parser = argparse.ArgumentParser(description="driftloop demo")
    parser.add_argument("--home", type=Path, default=ROOT / ".services")
    parser.add_argument("--config", type=Path, default=ROOT / "include" / "demo.yaml")
    parser.add_argument("--airflow-port", type=int, default=8080)
    parser.add_argument("--mlflow-port", type=int, default=5500)
    parser.add_argument("--evidently-port", type=int, default=8800)
    parser.add_argument("--stop", action="store_true", help="stop the services at the end")
    parser.add_argument("--cluster", action="store_true", help="play on the cluster of `make cluster`")
    args = parser.parse_args(argv)
    if args.cluster:
        return main_on_cluster(args)

    from include.config import load_settings

    settings = load_settings(args.config)
    svc = Services(args.home.resolve(), args.airflow_port, args.mlflow_port, args.config.resolve(), args.evidently_port)
    demo = Demo(settings, None, svc=svc)
    stop(svc.home)
    # a fresh start each time: the demo replays the same history. Its storage is wiped only if
    # the demo made it (marker file), never a folder of someone's own data.
    if "://" in settings.storage:
        raise SystemExit(f"the demo replays its stream into local storage; {args.config} names {settings.storage}")
    storage = Path(settings.storage)
    if storage.exists() and not (storage / ".driftloop-demo").exists():
        raise SystemExit(f"{storage} exists and was not made by the demo; choose another storage in {args.config}")
    landing = Path(settings.data.landing)
    if landing.exists() and not (landing / ".driftloop-demo").exists():
        raise SystemExit(f"{landing} exists and was not made by the demo; choose another data.landing in {args.config}")
    for folder in (svc.airflow_home, svc.mlflow_home, svc.evidently_home, storage, landing):
        if folder.exists():
            shutil.rmtree(folder)
    for folder in (storage, landing):  # hidden marker: the landing zone skips hidden files
        folder.mkdir(parents=True)
        (folder / ".driftloop-demo").write_text("made by scripts/demo.py; wiped by the next `make demo`\n")
    demo.say(
        f"starting MLflow ({svc.mlflow_url}), Evidently's UI ({svc.evidently_url}) and airflow standalone ({svc.airflow_url}); homes in {svc.home}"
    )
    start(svc)
    try:
        demo.airflow = Airflow(svc.airflow_url, "admin", svc.password())
        demo.write_stream()
        demo.wait_for_dags(where=f"{svc.airflow_home}/standalone.log")
        demo.say("DAGs parsed and unpaused; playing the stream")
        demo.play()
        demo.print_table()
        demo.print_where()
    finally:
        if args.stop:
            stop(svc.home)
    return demo


if __name__ == "__main__":
    main()
