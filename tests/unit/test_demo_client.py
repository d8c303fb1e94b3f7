"""The demo's REST client against a real local HTTP server that plays Airflow's API at its worst:
the local standalone's SQLite answers 500 "Database error" or nothing at all for a while (see
scripts/services.py). What is safe to repeat is repeated; a trigger never starts a run twice."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from include.airflow_api import Airflow, Unsettled

DB_ERROR = {"detail": "Database error"}


class FakeApi:
    """Answers from a script: each (method, path prefix) pops its next behaviour,
    "db" (500 Database error), "slow" (no answer before the client's timeout; a POST has
    created its run), "db-after-create" (creates the run, then answers 500), or "ok". Runs created by POSTs are kept, once each."""

    def __init__(self, script: dict[tuple[str, str], list[str]]) -> None:
        self.script, self.calls, self.runs = script, [], {}
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                api.calls.append((method, self.path))
                if self.path == "/auth/token":
                    return self._send(201, {"access_token": "t"})
                plan = next((v for (m, p), v in api.script.items() if m == method and self.path.startswith(p)), [])
                step = plan.pop(0) if plan else "ok"
                if method == "POST" and step in ("ok", "db-after-create", "slow"):
                    run_id = body["dag_run_id"]
                    if run_id in api.runs:
                        return self._send(409, {"detail": "already exists"})
                    api.runs[run_id] = body
                if step == "slow":
                    time.sleep(1.0)
                    return self._send(200, {"late": True})
                if step in ("db", "db-after-create"):
                    return self._send(500, DB_ERROR)
                if method == "GET" and "/dagRuns/" in self.path:
                    run_id = self.path.rsplit("/", 1)[1]
                    return self._send(200, {"state": "success"}) if run_id in api.runs else self._send(404, {"detail": "no"})
                return self._send(200, {"dags": [{"dag_id": "ingest", "is_paused": True}]})

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting: that is the point of "slow"

            def do_GET(self):  # noqa: N802 (http.server's naming)
                self._answer("GET")

            def do_POST(self):  # noqa: N802
                self._answer("POST")

            def do_PATCH(self):  # noqa: N802
                self._answer("PATCH")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self, method: str, prefix: str) -> int:
        return sum(1 for m, p in self.calls if m == method and p.startswith(prefix))


@pytest.fixture
def api(request):
    fake = FakeApi(request.param)
    yield fake, Airflow(fake.url, "admin", "pw", timeout=0.3, backoff=0.01)
    fake.server.shutdown()
    fake.server.server_close()


RUNS = "/api/v2/dags/ingest/dagRuns"


@pytest.mark.parametrize("api", [{("PATCH", "/api/v2/dags/ingest"): ["db", "slow", "db"]}], indirect=True)
def test_unpause_is_repeated_through_database_errors_and_silence(api):
    fake, client = api
    client.unpause("ingest")
    assert fake.count("PATCH", "/api/v2/dags/ingest") == 4


@pytest.mark.parametrize("api", [{("GET", "/api/v2/dags"): ["slow", "slow"]}], indirect=True)
def test_a_read_is_repeated_when_the_api_does_not_answer(api):
    fake, client = api
    assert client.dag_ids() == {"ingest": True}
    assert fake.count("GET", "/api/v2/dags") == 3


@pytest.mark.parametrize("api", [{("GET", "/api/v2/dags"): ["db"] * 10}], indirect=True)
def test_repeats_are_bounded_and_then_the_error_names_the_request(api):
    fake, client = api
    with pytest.raises(Unsettled, match="GET /api/v2/dags.*Database error"):
        client.dag_ids()
    assert fake.count("GET", "/api/v2/dags") == 7


@pytest.mark.parametrize("api", [{("POST", RUNS): ["db-after-create"]}], indirect=True)
def test_a_trigger_that_created_its_run_before_the_error_is_not_posted_again(api):
    fake, client = api
    assert client.trigger("ingest", "r1", {}) == "r1"
    assert fake.count("POST", RUNS) == 1
    assert list(fake.runs) == ["r1"]


@pytest.mark.parametrize("api", [{("POST", RUNS): ["db", "slow"]}], indirect=True)
def test_a_trigger_that_did_not_create_its_run_is_posted_again_once_it_is_missing(api):
    fake, client = api
    assert client.trigger("ingest", "r1", {}) == "r1"
    # db: nothing made, post again; slow: made but unanswered, found by the look before a third post
    assert fake.count("POST", RUNS) == 2
    assert list(fake.runs) == ["r1"]


@pytest.mark.parametrize("api", [{("POST", RUNS): ["ok"]}], indirect=True)
def test_a_conflict_on_the_first_post_is_an_error(api):
    fake, client = api
    fake.runs["r1"] = {}  # a run with this id existed before: the demo must not take it for its own
    with pytest.raises(RuntimeError, match="HTTP 409"):
        client.trigger("ingest", "r1", {})
