"""A small client of Airflow's REST API v2, used by ``driftloop bootstrap``, the demo, the
benchmarks and the tests: the calls a user makes from the UI (trigger a run with its conf, wait for
it, read a task's result), with the retries the local standalone's SQLite needs.

Plain ``urllib``: it imports nothing of Airflow and runs wherever the API is reachable.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request


class Unsettled(RuntimeError):
    """The API did not settle a request: no answer in time, or 500 "Database error" (see _request)."""


class Airflow:
    """A small client of Airflow's REST API v2 (token auth of the SimpleAuthManager)."""

    def __init__(self, url: str, username: str, password: str, timeout: float = 60, backoff: float = 1) -> None:
        self.url, self.username, self.password = url, username, password
        self.timeout, self.backoff = timeout, backoff
        self.token = None

    def _request(self, method: str, path: str, body: dict | None = None, auth: bool = True, attempt: int = 0):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method, headers={"Content-Type": "application/json"})
        if auth:
            if self.token is None:
                self.login()
            req.add_header("Authorization", f"Bearer {self.token}")
        # Reads, unpausing and logging in are safe to repeat; a trigger is not (see trigger).
        repeatable = (method in ("GET", "PATCH") or path == "/auth/token") and attempt < 6
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            if err.code == 401 and auth:
                self.token = None
                return self._request(method, path, body, auth)
            detail = err.read().decode()[:500]
            # The local standalone's metadata DB is SQLite: one writer at a time. The api-server
            # writes its audit log from an async dependency, on its event loop; when another of its
            # requests holds the write lock and needs that loop to commit, both wait until SQLite's
            # busy timeout (5 s) ends it with a 500 "Database error" (see scripts/services.py).
            unsettled = err.code >= 500 and "Database error" in detail
            if unsettled and repeatable:
                time.sleep(self.backoff * (1 + attempt))
                return self._request(method, path, body, auth, attempt + 1)
            raise (Unsettled if unsettled else RuntimeError)(f"{method} {path}: HTTP {err.code} {detail}") from None
        except (TimeoutError, ConnectionError, urllib.error.URLError) as err:
            if repeatable:
                time.sleep(self.backoff * (1 + attempt))
                return self._request(method, path, body, auth, attempt + 1)
            raise Unsettled(f"{method} {path}: no answer ({err})") from None

    def login(self) -> None:
        self.token = self._request("POST", "/auth/token", {"username": self.username, "password": self.password}, auth=False)[
            "access_token"
        ]

    def dag_ids(self) -> dict[str, bool]:
        """The DAG ids Airflow knows, each with whether it is paused."""
        return {d["dag_id"]: d["is_paused"] for d in self._request("GET", "/api/v2/dags?limit=100")["dags"]}

    def unpause(self, dag_id: str) -> None:
        self._request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

    def pause(self, dag_id: str) -> None:
        self._request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": True})

    def trigger(self, dag_id: str, run_id: str, conf: dict, attempts: int = 4) -> str:
        """Start a run with a fixed id, exactly once: a POST the API did not settle is repeated
        only after looking whether the run exists."""
        for attempt in range(attempts):
            try:
                self._request("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"dag_run_id": run_id, "logical_date": None, "conf": conf})
                return run_id
            except Unsettled:
                if attempt == attempts - 1:
                    raise
            except RuntimeError as err:
                # 409: an unsettled POST before this one did create the run after all
                if attempt == 0 or "HTTP 409" not in str(err):
                    raise
            time.sleep(self.backoff * (2 + 2 * attempt))
            if self.run(dag_id, run_id):
                return run_id
        return run_id

    def _get_or_none(self, path: str) -> dict | None:
        """A GET of ``path``; None when it does not exist (404)."""
        try:
            return self._request("GET", path)
        except RuntimeError as err:
            if "HTTP 404" in str(err):
                return None
            raise

    def run(self, dag_id: str, run_id: str) -> dict | None:
        return self._get_or_none(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")

    def runs(self, dag_id: str) -> list[dict]:
        return self._request("GET", f"/api/v2/dags/{dag_id}/dagRuns?order_by=-run_after&limit=50")["dag_runs"]

    def runs_all(self, dag_id: str) -> list[dict]:
        """Every run of ``dag_id``, page by page."""
        found: list[dict] = []
        while page := self._request("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100&offset={len(found)}")["dag_runs"]:
            found += page
        return found

    def task_instances(self) -> list[dict]:
        """Every task instance of every DAG run, page by page."""
        found: list[dict] = []
        path = "/api/v2/dags/~/dagRuns/~/taskInstances?limit=100"
        while page := self._request("GET", f"{path}&offset={len(found)}")["task_instances"]:
            found += page
        return found

    def asset_events(self, limit: int = 100) -> list[dict]:
        """The latest asset events (uri, timestamp, extra, source run), newest first."""
        return self._request("GET", f"/api/v2/assets/events?limit={limit}&order_by=-timestamp")["asset_events"]

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict | None:
        """One task instance (its latest try), or None when the run or task does not exist."""
        return self._get_or_none(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")

    def task_time(self, tis: list[dict] | None = None) -> tuple[int, int, float]:
        """DAG runs, task instances and the sum of their run times, over every DAG."""
        runs = self._request("GET", "/api/v2/dags/~/dagRuns?limit=1")["total_entries"]
        tis = self.task_instances() if tis is None else tis
        return runs, len(tis), sum(t.get("duration") or 0.0 for t in tis)

    def task_hosts(self, tis: list[dict] | None = None) -> dict[str, int]:
        """How many task instances each worker ran (``hostname``), over every DAG."""
        hosts: dict[str, int] = {}
        for ti in self.task_instances() if tis is None else tis:
            if ti.get("hostname"):
                hosts[ti["hostname"]] = hosts.get(ti["hostname"], 0) + 1
        return dict(sorted(hosts.items()))

    def delete_runs(self, dag_id: str, keep_running: bool = False) -> int:
        """Deletes the runs of ``dag_id`` (a replay of the demo reuses its run ids); an unfinished
        run is marked failed first, or kept with ``keep_running``."""
        deleted, offset = 0, 0
        while runs := self._request("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100&offset={offset}")["dag_runs"]:
            for run in runs:
                path = f"/api/v2/dags/{dag_id}/dagRuns/{run['dag_run_id']}"
                if run["state"] not in ("success", "failed"):
                    if keep_running:
                        offset += 1
                        continue
                    self._request("PATCH", path, {"state": "failed"})
                self._request("DELETE", path)
                deleted += 1
        return deleted

    def xcom(self, dag_id: str, run_id: str, task_id: str, map_index: int | None = None):
        """A task's return value (of one mapped instance with ``map_index``), or None."""
        mapped = f"&map_index={map_index}" if map_index is not None else ""
        try:
            entry = self._request(
                "GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value?deserialize=true{mapped}"
            )
        except RuntimeError:
            return None
        value = entry.get("value")
        return json.loads(value) if isinstance(value, str) and value[:1] in "{[" else value

    def wait(self, dag_id: str, run_id: str, timeout: float = 600) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.run(dag_id, run_id)
            if run and run["state"] in ("success", "failed"):
                return run["state"]
            time.sleep(2)
        raise TimeoutError(f"{dag_id} run {run_id} did not finish within {timeout:.0f} s")
