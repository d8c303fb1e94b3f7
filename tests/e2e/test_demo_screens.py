"""The screens a user lives in, in a real browser (Playwright driving Debian's Chromium), on the
services and data of `make demo` (the session's ``demo``, after tests/e2e/test_demo_loop.py):
the Airflow login, the DAG list, the ``retrain`` trigger form (a manual retrain submitted through
it and waited for), monitor's links to MLflow and to the interval's Evidently report, the
champion's version page in MLflow with its alias and model card, the model-health dashboard in
Evidently's UI, the drift timeline on a monitoring run, and a challenger approved under Required
Actions (the config switched to ``promotion.mode: approval``, as a user would) and promoted, and
the backtest's picture in MLflow.

Screenshots (1440x900) go to a temporary folder, or to ``$DRIFTLOOP_SCREENS`` (``make screens``
writes the README's, ``docs/screens/``).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.conftest import log_in, submit_trigger_form

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

DAGS = ("ingest", "monitor", "drift_watch", "retrain", "rollback")


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    chosen = os.environ.get("DRIFTLOOP_SCREENS")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("screens")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def context(browser, demo):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    yield context
    context.close()


@pytest.fixture(scope="module")
def page(context, demo):
    page = context.new_page()
    log_in(page, demo.svc.airflow_url, "admin", demo.svc.password())
    assert "/auth/login" not in page.url
    return page


def test_the_airflow_login_refuses_a_wrong_password(browser, demo, shots):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        page = context.new_page()
        log_in(page, demo.svc.airflow_url, "admin", demo.svc.password() + "x")
        assert "/auth/login" in page.url
        page.get_by_text("Invalid credentials").wait_for()
        page.goto(demo.svc.airflow_url + "/dags")
        page.wait_for_url("**/auth/login**")  # still nobody
        page.screenshot(path=str(shots / "airflow-login-refused.png"))
    finally:
        context.close()


def test_the_dag_list_shows_every_dag(page, demo, shots):
    page.goto(demo.svc.airflow_url + "/dags")
    for dag_id in DAGS:
        page.get_by_role("link", name=dag_id, exact=True).first.wait_for()
    page.screenshot(path=str(shots / "airflow-dags.png"))


def test_a_retrain_triggered_through_the_form_runs_and_its_card_says_why(page, demo, shots):
    """The form a user fills (titled, described fields), a manual retrain of the last two clean
    weeks submitted through it, and the new version's card in MLflow saying what was decided."""
    from mlflow import MlflowClient

    airflow = demo.airflow
    before = {r["dag_run_id"] for r in airflow.runs_all("retrain")}
    page.goto(demo.svc.airflow_url + "/dags/retrain")
    page.get_by_role("button", name="Trigger Dag").click()
    form = page.get_by_role("dialog")
    for title, description in (
        ("Window end", "excluded (default: now)"),
        ("Window length", "e.g. 90D, 12H or 2W"),
        ("Window start", "a drift retrain starts at the drift's onset"),
        ("Reason", "why this retrain runs"),
    ):
        form.get_by_text(title).first.wait_for()  # "Reason *": a required field
        form.get_by_text(description).first.wait_for()
    form.locator("#element_end").fill("2026-03-09")
    form.locator("#element_window").fill("14D")
    page.screenshot(path=str(shots / "airflow-retrain-trigger-form.png"))
    run = submit_trigger_form(page, airflow, "retrain", before)
    assert run["run_type"] == "manual" and run["conf"]["end"] == "2026-03-09" and run["conf"]["window"] == "14D"
    assert run["conf"]["reason"] == "manual"
    assert airflow.wait("retrain", run["dag_run_id"], timeout=600) == "success"
    trained = airflow.xcom("retrain", run["dag_run_id"], "train")
    promoted = airflow.xcom("retrain", run["dag_run_id"], "promote")
    card = MlflowClient(demo.svc.mlflow_url).get_model_version(demo.settings.name, str(trained["version"])).description
    assert card.startswith(f"# {demo.settings.name} v{trained['version']}\n")
    assert "| why retrained | manual |" in card
    assert promoted["reason"] in card  # why it was or was not promoted, in the version itself

    page.goto(f"{demo.svc.airflow_url}/dags/retrain/runs/{quote(run['dag_run_id'], safe='')}")
    page.get_by_text(run["dag_run_id"]).first.wait_for()
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(shots / "airflow-retrain-run.png"))


def _hide_mlflow_assistant(page) -> None:
    """Closes MLflow 3.17's Assistant side panel (open at first, a chat no one here uses) so the
    screenshot shows the page; closed once, it stays closed (a button is left in its place)."""
    panel = page.get_by_text("Ask questions about your experiments").first
    page.wait_for_timeout(1000)  # the panel renders after the page
    if panel.is_visible():
        page.locator("button[aria-label='Close']").first.click()
        panel.wait_for(state="hidden", timeout=10_000)


def _monitor_run(airflow, start: str) -> tuple[str, dict]:
    for run in airflow.runs("monitor"):
        verdict = airflow.xcom("monitor", run["dag_run_id"], "drift", map_index=0)
        if verdict and verdict["start"].startswith(start):
            return run["dag_run_id"], verdict
    raise AssertionError(f"no monitor run checked the interval starting {start}")


def test_the_drift_task_links_to_its_mlflow_run_and_its_evidently_report(page, context, demo, shots):
    run_id, verdict = _monitor_run(demo.airflow, "2026-02-23")  # the second drifted week
    page.goto(f"{demo.svc.airflow_url}/dags/monitor/runs/{quote(run_id, safe='')}/tasks/drift/mapped/0/details")
    mlflow, report = page.get_by_role("link", name="MLflow"), page.get_by_role("link", name="Evidently report")
    report.wait_for(timeout=30_000)
    assert mlflow.get_attribute("href") == verdict["mlflow_url"]
    assert report.get_attribute("href") == verdict["report_url"] == f"{verdict['mlflow_url']}/artifacts/evidently/drift.html"
    page.screenshot(path=str(shots / "airflow-drift-task-links.png"))
    with context.expect_page() as opened:
        report.click()
    shown = opened.value
    shown.get_by_text("evidently/drift.html").first.wait_for(timeout=60_000)
    # the report itself, in the artifact viewer's frame: Evidently's own drift table
    frame = shown.frame_locator("iframe").first
    frame.get_by_text("Dataset Drift is detected").first.wait_for(timeout=60_000)
    _hide_mlflow_assistant(shown)
    shown.screenshot(path=str(shots / "mlflow-evidently-report.png"))
    shown.close()


def test_the_champion_version_page_shows_its_alias_and_model_card(page, demo, shots):
    from mlflow import MlflowClient

    name = demo.settings.name
    champion = MlflowClient(demo.svc.mlflow_url).get_model_version_by_alias(name, "champion")
    page.goto(f"{demo.svc.mlflow_url}/#/models/{name}/versions/{champion.version}")
    page.get_by_text("@ champion").first.wait_for(timeout=60_000)
    # the card, rendered: its title, its headline and its sections
    page.get_by_text(f"{name} v{champion.version}", exact=True).first.wait_for()
    page.get_by_text("Champion.").first.wait_for()
    for section in ("Time-based cross-validation", "Comparison on the same out-of-time rows", "Checks", "Decision"):
        page.get_by_text(section).first.wait_for()
    _hide_mlflow_assistant(page)
    page.screenshot(path=str(shots / "mlflow-champion-version.png"))
    # the drift retrain's version: its card links each drifted interval to its Evidently report
    client = MlflowClient(demo.svc.mlflow_url)
    drifted = next(v for v in client.search_model_versions(f"name='{name}'") if "| why retrained | drift:" in (v.description or ""))
    page.goto(f"{demo.svc.mlflow_url}/#/models/{name}/versions/{drifted.version}")
    link = page.get_by_role("link", name="2026-02-16 .. 2026-02-23")
    link.first.wait_for(timeout=60_000)
    href = link.first.get_attribute("href")
    assert href.startswith(f"{demo.svc.mlflow_url}/#/experiments/") and href.endswith("/artifacts/evidently/drift.html"), href


def test_the_model_health_dashboard_shows_every_monitored_week(page, context, demo, shots):
    """Evidently's UI, as `make demo` left it: one snapshot per monitored week (their figures the
    verdicts'), reached from monitor's drift task, with the panels a team reviews each week."""
    from include.dashboard import Dashboard

    name = demo.settings.name
    board = Dashboard(demo.svc.evidently_url)
    table = sorted((r for r in demo.table if r.drift_share is not None), key=lambda r: r.interval)  # the monitored weeks
    snapshots = board.snapshots(name)
    assert [s["metadata"]["start"][:10] for s in snapshots] == [r.interval[:10] for r in table]
    series = board.series(name, ["drift_share", "champion_version"])
    assert series["drift_share"] == pytest.approx([r.drift_share for r in table])
    assert series["champion_version"] == [float(r.champion) for r in table]

    run_id, verdict = _monitor_run(demo.airflow, "2026-02-23")
    page.goto(f"{demo.svc.airflow_url}/dags/monitor/runs/{quote(run_id, safe='')}/tasks/drift/mapped/0/details")
    link = page.get_by_role("link", name="Model health")
    link.wait_for(timeout=30_000)
    assert link.get_attribute("href") == verdict["dashboard_url"] == board.project_url(name)
    with context.expect_page() as opened:
        link.click()
    shown = opened.value
    shown.set_viewport_size({"width": 1440, "height": 900})
    for title in (
        "Champion version",
        "Live roc_auc",
        "Drifted features over time",
        "Live roc_auc: champion and shadow",
        "Prediction drift",
        "Rows",
    ):
        shown.get_by_text(title, exact=True).first.wait_for(timeout=60_000)
    # the counters show the last monitored week's figures
    last = table[-1]
    shown.get_by_text(str(last.champion), exact=True).first.wait_for()
    shown.get_by_text("share of drifted features").first.wait_for()
    shown.wait_for_load_state("networkidle")
    shown.wait_for_timeout(3000)  # the plots draw their lines in an animation
    assert shown.get_by_text("no value").count() == 0  # every counter has its figure
    drawn = shown.inner_text("body")  # the plots' axes name every monitored week
    assert all(f"{r.interval[:10]} 00:00:00" in drawn for r in table), [r.interval for r in table]
    shown.screenshot(path=str(shots / "evidently-model-health.png"))
    # one week's snapshot: the verdict's figures beside Evidently's drift pictures
    drifted = next(s for s in snapshots if s["metadata"]["start"].startswith("2026-02-23"))
    shown.goto(board.snapshot_url(name, drifted["id"]))
    shown.get_by_text("share of drifted features").first.wait_for(timeout=60_000)
    shown.wait_for_load_state("networkidle")
    shown.screenshot(path=str(shots / "evidently-interval-snapshot.png"))
    shown.close()


def test_the_latest_monitoring_run_shows_the_drift_timeline(page, demo, shots):
    """Every monitoring run in MLflow carries the drift timeline up to its interval: the last one
    tells the whole story (the drifted weeks, the retrain, the recovery)."""
    run_id, verdict = _monitor_run(demo.airflow, max(r.interval for r in demo.table if r.drift_share is not None)[:10])
    page.goto(f"{verdict['mlflow_url']}/artifacts/charts/drift_over_time.png")
    page.get_by_text("drift_over_time.png").first.wait_for(timeout=60_000)
    # the artifact viewer shows the file fetched into a blob: the PNG itself, not a broken icon
    image = page.locator("img[src^='blob:']").first
    image.wait_for(timeout=60_000)
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 400", arg=image.element_handle(), timeout=30_000)
    _hide_mlflow_assistant(page)
    page.screenshot(path=str(shots / "mlflow-drift-timeline.png"))


def test_a_challenger_approved_under_required_actions_becomes_champion(page, demo, shots):
    """`promotion.mode: approval`, as a user sets it in the config the services run (read when a
    task runs): `@champion` rolled back to v1 (the rollback DAG), a retrain on the drifted weeks
    submitted through the form, its better challenger waiting under Required Actions with its model
    card, approved there with the Approve button, and promoted."""
    import time

    import yaml
    from mlflow import MlflowClient

    airflow, name = demo.airflow, demo.settings.name
    mlflow = MlflowClient(demo.svc.mlflow_url)
    original = demo.svc.config.read_text()
    config = yaml.safe_load(original)
    config.setdefault("promotion", {})["mode"] = "approval"
    demo.svc.config.write_text(yaml.safe_dump(config))
    try:
        rolled = airflow.trigger("rollback", "e2e_rollback_to_v1", {"version": 1})
        assert airflow.wait("rollback", rolled, timeout=300) == "success"
        assert mlflow.get_model_version_by_alias(name, "champion").version == "1"

        before = {r["dag_run_id"] for r in airflow.runs_all("retrain")}
        page.goto(demo.svc.airflow_url + "/dags/retrain")
        page.get_by_role("button", name="Trigger Dag").click()
        form = page.get_by_role("dialog")
        form.locator("#element_end").fill("2026-03-09")
        form.locator("#element_window").fill("14D")
        run = submit_trigger_form(page, airflow, "retrain", before)
        run_id = run["dag_run_id"]
        deadline = time.monotonic() + 600
        while (ti := airflow.task_instance("retrain", run_id, "approval") or {}).get("state") != "awaiting_input":
            assert time.monotonic() < deadline, f"the approval never waited: {ti}"
            assert airflow.run("retrain", run_id)["state"] in ("queued", "running"), airflow.run("retrain", run_id)
            time.sleep(3)
        trained = airflow.xcom("retrain", run_id, "train")
        assert mlflow.get_model_version_by_alias(name, "champion").version == "1"  # nothing moves before a human answers

        page.goto(f"{demo.svc.airflow_url}/dags/retrain/runs/{quote(run_id, safe='')}/tasks/approval/required_actions")
        page.get_by_text("Promote the challenger to champion?").first.wait_for(timeout=60_000)
        # the body is the challenger's model card, rendered: what the reviewer signs off
        page.get_by_text(f"{name} v{trained['version']}", exact=True).first.wait_for(timeout=30_000)
        page.get_by_text("Comparison on the same out-of-time rows").first.wait_for()
        approve = page.get_by_test_id("hitl-option-Approve")
        approve.wait_for()
        page.screenshot(path=str(shots / "airflow-approval.png"))
        approve.click()
        assert airflow.wait("retrain", run_id, timeout=600) == "success"
        assert mlflow.get_model_version_by_alias(name, "champion").version == str(trained["version"])
        assert airflow.task_instance("retrain", run_id, "approval")["state"] == "success"
        promoted = airflow.xcom("retrain", run_id, "promote")
        assert promoted["promoted"] is True, promoted
        card = mlflow.get_model_version(name, str(trained["version"])).description
        assert promoted["reason"] in card  # why, in the version itself
    finally:
        demo.svc.config.write_text(original)


def test_the_backtest_picture_in_mlflow(page, demo, shots, tmp_path):
    """`driftloop backtest --mlflow` on the demo's config and landing files (as a user runs it
    beside the services): its picture of the policies, an artifact of its run in MLflow."""
    import subprocess
    import sys
    from pathlib import Path

    from mlflow import MlflowClient

    env = {**os.environ, "MLFLOW_TRACKING_URI": demo.svc.mlflow_url}
    cmd = [str(Path(sys.executable).parent / "driftloop"), "backtest", "--config", str(demo.svc.config)]
    cmd += ["--policies", "static,drift", "--every", "7D", "--out", str(tmp_path / "out"), "--mlflow", "--quiet"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "out" / "policies.png").exists()
    client = MlflowClient(demo.svc.mlflow_url)
    experiment = client.get_experiment_by_name(f"{demo.settings.name}-backtest")
    parent = next(r for r in client.search_runs([experiment.experiment_id]) if "mlflow.parentRunId" not in r.data.tags)
    page.goto(f"{demo.svc.mlflow_url}/#/experiments/{experiment.experiment_id}/runs/{parent.info.run_id}/artifacts/policies.png")
    image = page.locator("img[src^='blob:']").first
    image.wait_for(timeout=60_000)
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 400", arg=image.element_handle(), timeout=30_000)
    _hide_mlflow_assistant(page)
    page.screenshot(path=str(shots / "mlflow-backtest.png"))
