import pytest

from include import alerts
from include.storage import Storage
from tests.conftest import Hook


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


@pytest.fixture
def storage(tmp_path):
    return Storage(str(tmp_path / "store"), str(tmp_path / "landing"), "timestamp")


PROMOTED = {
    "kind": "promotion",
    "promoted": True,
    "champion": 2,
    "reason": "challenger roc_auc 0.81 beats champion 0.56",
    "mlflow_url": "http://m/#/models/x/versions/2",
}


def test_result_alerts_name_what_happened():
    promo = alerts.from_result("car_loans", "retrain", "drift__1", "promote", PROMOTED)
    assert promo.kind == "promotion" and promo.title == "car_loans: v2 is the new champion"
    assert promo.link == PROMOTED["mlflow_url"] and "0.81" in promo.payload()["text"]
    assert alerts.from_result("car_loans", "retrain", "r", "promote", {**PROMOTED, "promoted": False}) is None
    # refused by a check a better score cannot make up for: said, naming the version and the check
    refused = {
        **PROMOTED,
        "promoted": False,
        "champion": 1,
        "challenger": 3,
        "refused_by": ["baseline"],
        "reason": "does not beat the baseline",
    }
    said = alerts.from_result("car_loans", "retrain", "r", "promote", refused)
    worth = {"metric": "approval_rate", "value": 0.41, "rows": 900, "reference": 0.62, "max_drop": 0.1, "fell": True}
    fell = alerts.from_result(
        "m", "monitor", "r", "drift", {"kind": "verdict", "start": "a", "end": "b", "model_version": 2, "drift": False, "business": worth}
    )
    assert (fell.kind, fell.title) == ("business", "m: approval_rate fell to 0.4100 in [a, b)") and "0.6200 on champion v2" in fell.text
    calm = {"kind": "verdict", "start": "a", "end": "b", "model_version": 2, "drift": False, "business": {**worth, "fell": False}}
    assert alerts.from_result("m", "monitor", "r", "drift", calm) is None
    assert (said.kind, said.title, said.text) == (
        "rejected",
        "car_loans: v3 refused by the baseline check(s)",
        "does not beat the baseline",
    )

    rolled = {
        "kind": "guard",
        "degraded": True,
        "rolled_back": True,
        "from": 2,
        "champion": 1,
        "reason": "v2 trails shadow v1",
        "mlflow_url": None,
    }
    assert alerts.from_result("m", "monitor", "r", "guard", rolled).title == "m: champion rolled back from v2 to v1"
    manual = {"kind": "guard", "degraded": True, "rolled_back": False, "champion": 2, "reason": "v2 trails shadow v1", "mlflow_url": None}
    assert alerts.from_result("m", "monitor", "r", "guard", manual).kind == "degraded"
    assert alerts.from_result("m", "monitor", "r", "guard", {**manual, "degraded": False}) is None

    drift = alerts.from_result(
        "m", "drift_watch", "r", "mark_handled", {"kind": "drift_trigger", "retrain_run_id": "drift__x", "verdicts": ["a", "b"]}
    )
    assert drift.kind == "drift" and "a, b" in drift.text and "drift__x" in drift.text
    assert alerts.from_result("m", "d", "r", "t", None) is None
    # the kind decides, not which keys a result happens to have
    assert alerts.from_result("m", "retrain", "r", "retain", {"kind": "retention", "archived": [1], "promoted": True}) is None
    assert alerts.from_result("m", "retrain", "r", "promote", {k: v for k, v in PROMOTED.items() if k != "kind"}) is None


def test_deliver_posts_once_and_keeps_a_record(hook, storage):
    alert = alerts.failure(
        "car_loans", "ingest", "manual__2026", "gate", "column 'car_value': expect_column_values_to_be_between", "http://a/log"
    )
    record = alerts.deliver(alert, storage, hook.url)
    assert record["delivered"] is True and record["error"] is None
    assert len(hook.received) == 1 and hook.received[0]["path"] == "/hooks/driftloop"
    body = hook.received[0]["body"]
    assert body["text"].startswith("[driftloop] car_loans: ingest.gate failed\ncolumn 'car_value'")
    assert body["driftloop"]["kind"] == "failure" and body["driftloop"]["run_id"] == "manual__2026"
    assert storage.read_json(storage.path("alerts", f"{alert.key}.json"))["delivered"] is True
    # the same task's alert again (a re-run): not sent twice
    alerts.deliver(alert, storage, hook.url)
    assert len(hook.received) == 1


def test_an_unreachable_webhook_is_recorded_and_retried_later(storage, hook):
    alert = alerts.from_result("m", "retrain", "r", "promote", PROMOTED)
    dead = Hook()
    url = dead.url
    dead.close()
    record = alerts.deliver(alert, storage, url, timeout=2)
    assert record["delivered"] is False and "Connection refused" in record["error"]
    assert storage.read_json(storage.path("alerts", f"{alert.key}.json"))["delivered"] is False
    alerts.deliver(alert, storage, hook.url)  # a re-run, the webhook back up
    assert len(hook.received) == 1


def test_a_webhook_error_status_is_not_delivered(storage):
    failing = Hook(status=500)
    try:
        record = alerts.deliver(alerts.from_result("m", "retrain", "r", "promote", PROMOTED), storage, failing.url)
    finally:
        failing.close()
    assert record["delivered"] is False and "500" in record["error"]


def test_without_a_webhook_the_alert_is_only_kept(storage):
    alert = alerts.from_result("m", "retrain", "r", "promote", PROMOTED)
    assert alerts.deliver(alert, storage, None)["delivered"] is None
    assert storage.exists(storage.path("alerts", f"{alert.key}.json"))


@pytest.mark.parametrize(
    ("uri", "url"),
    [
        ("https://hooks.slack.com/services/T0/B0/XYZ", "https://hooks.slack.com/services/T0/B0/XYZ"),
        ("http://127.0.0.1:8000/hook?channel=ml", "http://127.0.0.1:8000/hook?channel=ml"),
    ],
)
def test_webhook_url_from_an_airflow_connection_uri(uri, url):
    from airflow.sdk.definitions.connection import Connection

    from alert_notifier import webhook_url

    assert webhook_url(Connection.from_uri(uri, conn_id="driftloop_alerts")) == url


def test_webhook_url_from_a_full_url_in_host():
    from airflow.sdk.definitions.connection import Connection

    from alert_notifier import webhook_url

    conn = Connection(conn_id="driftloop_alerts", conn_type="http", host="https://chat.example.com/hooks/abc")
    assert webhook_url(conn) == "https://chat.example.com/hooks/abc"


def test_a_degraded_champion_is_told_once_per_piece_of_evidence(hook, storage):
    # monitoring.rollback: manual leaves the champion in place; every monitor run's guard finds it
    # degraded again. The alert is sent when the evidence is new, not on every run.
    held = {
        "kind": "guard",
        "degraded": True,
        "rolled_back": False,
        "champion": 2,
        "mode": "manual",
        "reason": "v2 trails v1",
        "mlflow_url": None,
    }
    weeks_7_8 = {**held, "evidence": ["20260216T000000Z__20260223T000000Z", "20260223T000000Z__20260302T000000Z"]}
    weeks_8_9 = {**held, "evidence": ["20260223T000000Z__20260302T000000Z", "20260302T000000Z__20260309T000000Z"]}
    for run_id, result in [("asset__1", weeks_7_8), ("asset__2", weeks_7_8), ("asset__3", weeks_8_9), ("asset__4", weeks_8_9)]:
        alerts.deliver(alerts.from_result("m", "monitor", run_id, "guard", result), storage, hook.url)
    assert [h["body"]["driftloop"]["run_id"] for h in hook.received] == ["asset__1", "asset__3"]
    # a different champion with the same intervals is other news
    alerts.deliver(alerts.from_result("m", "monitor", "asset__5", "guard", {**weeks_8_9, "champion": 3}), storage, hook.url)
    assert len(hook.received) == 3
    # a run-scoped alert keeps its per-run key
    assert alerts.from_result("m", "retrain", "r", "promote", PROMOTED).key == "retrain__r__promote__promotion"


def test_an_alert_never_carries_tracking_credentials(tmp_path):
    """A failure whose message names the tracking URI (MLflow names the URL it could not reach)."""
    from include import alerts
    from include.storage import Storage

    error = "MlflowException: API request to http://alice:s3cr3t@mlflow:5000/api/2.0/mlflow/runs/get failed"
    alert = alerts.failure("m", "retrain", "r1", "train", error, "http://alice:s3cr3t@mlflow:5000/#/x")
    payload = alert.payload()
    assert "s3cr3t" not in str(payload) and "http://mlflow:5000/api/2.0" in payload["text"]
    record = alerts.deliver(alert, Storage(str(tmp_path / "store"), str(tmp_path / "landing"), "timestamp"), None)
    assert "s3cr3t" not in str(record)
