"""The cluster tried as a new user would, in a real browser (Playwright driving Debian's Chromium):
log in to the Airflow UI with the credentials `make cluster` printed (a wrong password is refused),
trigger `retrain` from the DAG's Trigger form, and follow the `train` task's MLflow link to its
run, which MLflow shows only after a login of its own.

Runs after tests/cluster/test_backfill.py (files run in name order): the landed days and the first
champion are there."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.cluster.conftest import START
from tests.conftest import log_in, submit_trigger_form

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

DAYS = 10  # the backfill test landed and curated days 0-9 (and retrained on them)
SHOTS = Path(__file__).resolve().parents[2] / ".cluster-test" / "screens"


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    yield context.new_page()
    context.close()


def shoot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def test_the_airflow_login_page_refuses_a_wrong_password(cluster, page):
    creds = cluster.creds
    log_in(page, creds["AIRFLOW_URL"], creds["AIRFLOW_USER"], creds["AIRFLOW_PASSWORD"] + "x")
    assert "/auth/login/" in page.url
    assert page.get_by_text("Invalid login").is_visible()
    shoot(page, "airflow-login-refused")
    page.goto(creds["AIRFLOW_URL"] + "/dags")
    page.wait_for_url(re.compile(r".*/auth/login/.*"))  # still nobody


def test_mlflow_asks_the_browser_for_a_login_and_refuses_a_wrong_one(cluster, browser):
    """Chromium answers MLflow's basic-auth challenge with the context's credentials; with none, or
    a wrong password, the challenge comes back and the navigation ends in an auth error."""
    from playwright.sync_api import Error as BrowserError

    for credentials in (None, {"username": cluster.creds["MLFLOW_USER"], "password": "not-the-password"}):
        context = browser.new_context(http_credentials=credentials)
        try:
            status = context.new_page().goto(cluster.creds["MLFLOW_URL"] + "/").status
        except BrowserError as err:  # the challenge came back after the browser's answer
            assert "ERR_INVALID_AUTH_CREDENTIALS" in str(err)
            status = 401
        finally:
            context.close()
        assert status == 401


def test_a_retrain_triggered_from_the_ui_links_to_its_mlflow_run(cluster, airflow, browser):
    creds = cluster.creds
    # one browser for both UIs: the MLflow login is answered only when MLflow asks for it
    context = browser.new_context(
        viewport={"width": 1440, "height": 900},
        http_credentials={"username": creds["MLFLOW_USER"], "password": creds["MLFLOW_PASSWORD"], "origin": creds["MLFLOW_URL"]},
    )
    try:
        page = context.new_page()
        log_in(page, creds["AIRFLOW_URL"], creds["AIRFLOW_USER"], creds["AIRFLOW_PASSWORD"])
        assert "/auth/login/" not in page.url
        page.goto(creds["AIRFLOW_URL"] + "/dags")
        page.get_by_role("link", name="retrain", exact=True).first.wait_for()
        shoot(page, "airflow-dags")

        before = {r["dag_run_id"] for r in airflow.runs_all("retrain")}
        page.goto(creds["AIRFLOW_URL"] + "/dags/retrain")
        page.get_by_role("button", name="Trigger Dag").click()
        form = page.get_by_role("dialog")
        end = (START + timedelta(days=DAYS)).strftime("%Y-%m-%d")
        form.locator("#element_end").fill(end)
        form.locator("#element_window").fill(f"{DAYS}D")
        shoot(page, "airflow-retrain-trigger-form")
        run = submit_trigger_form(page, airflow, "retrain", before)
        assert run["run_type"] == "manual"
        assert (run["conf"]["end"], run["conf"]["window"], run["conf"]["reason"]) == (end, f"{DAYS}D", "manual")
        assert airflow.wait("retrain", run["dag_run_id"], timeout=800) == "success"

        # the train task's Details tab has the MLflow button; it opens the run on the public URL
        page.goto(f"{creds['AIRFLOW_URL']}/dags/retrain/runs/{quote(run['dag_run_id'], safe='')}/tasks/train/details")
        link = page.get_by_role("link", name="MLflow")
        link.wait_for(timeout=30_000)
        trained = airflow.xcom("retrain", run["dag_run_id"], "train")
        assert link.get_attribute("href") == trained["mlflow_url"]
        assert trained["mlflow_url"].startswith(creds["MLFLOW_URL"] + "/#/experiments/")
        shoot(page, "airflow-train-task-details")
        with context.expect_page() as opened:
            link.click()
        mlflow_page = opened.value
        mlflow_page.get_by_text(trained["run_id"]).first.wait_for(timeout=60_000)  # the run's page, with its id
        mlflow_page.get_by_text(run["dag_run_id"]).first.wait_for()  # tagged with the Airflow run
        shoot(mlflow_page, "mlflow-train-run")
    finally:
        context.close()
