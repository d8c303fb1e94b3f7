"""The retraining backtest: replays the landing zone's history interval by interval through the
same library functions the DAGs call, once per retraining policy, and compares the policies.

Each policy gets its own storage root and its own MLflow (a SQLite file under the work folder), so
its champion, verdicts, drift triggers and versions are its own, exactly as production would keep
them. Per interval, in the order the DAGs run:

1. ``ingest``: ``ingestion.check_landing`` (the gate, with the champion's learned tolerances) and
   ``ingestion.publish``; a batch the gate refuses is quarantined and the interval is not
   monitored, as in production.
2. ``monitor``: ``monitoring.score_interval`` and ``monitoring.check_drift`` (the verdict), then
   ``moves.guard_champion`` (the automatic rollback) and ``rollout.rollout_step``.
3. The policy: ``drift`` asks ``monitoring.find_pending_drift`` (debounce, cooldown and the drift
   window of the config) and, when a retrain is due, marks it handled as ``drift_watch`` does;
   ``every:N`` retrains at the end of every N-th interval, as a scheduled retrain would.
4. ``retrain``: ``retraining.gate_window``, ``train_challenger``, ``evaluate_challenger``,
   ``moves.promote`` and ``moves.retain``, under the run id the DAG run would have.

The first champion is trained on the ``training.window`` before the first interval. A retrain is
taken to finish before the next interval arrives; under ``promotion.mode: approval`` a better
challenger is taken as approved. Labels are read as they are now: a backtest sees every label that
has arrived by the time it runs, also those that arrived after the interval they describe.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from include import registry
from include.errors import DataError, DriftloopError
from include.storage import Window, safe_name

if TYPE_CHECKING:
    from include.config import Settings

log = logging.getLogger(__name__)

_POLICY = re.compile(r"^(static|drift|every:(\d+))$")


class PolicyError(DriftloopError, ValueError):
    """A policy that cannot be read."""


@dataclass(frozen=True)
class Policy:
    """A retraining policy: ``static`` (the first model only), ``every:N`` (a retrain at the end of
    every N-th interval), ``drift`` (the config's drift rule), or parts joined by ``+``
    (``drift+every:12``)."""

    name: str
    every: int | None = None
    drift: bool = False

    @classmethod
    def parse(cls, text: str) -> Policy:
        every, drift = None, False
        parts = [p.strip() for p in text.strip().split("+")]
        for part in parts:
            match = _POLICY.match(part)
            if not match:
                raise PolicyError(f"unknown policy {part!r} in {text!r}: use static, every:N (N >= 1), drift, or parts joined by +")
            if match.group(2) is not None:
                if every is not None or int(match.group(2)) < 1:
                    raise PolicyError(f"policy {text!r}: give one every:N with N >= 1")
                every = int(match.group(2))
            drift = drift or part == "drift"
        if "static" in parts and len(parts) > 1:
            raise PolicyError(f"policy {text!r}: static retrains never and joins no other part")
        return cls(name="+".join(parts), every=every, drift=drift)

    def scheduled(self, position: int) -> bool:
        """Whether the interval at ``position`` (0-based) ends with a scheduled retrain."""
        return self.every is not None and (position + 1) % self.every == 0


def parse_policies(text: str) -> list[Policy]:
    """``static,every:4,drift`` as policies, in that order, each once.

    Raises:
        PolicyError: a policy cannot be read, or one is named twice.
    """
    policies = [Policy.parse(p) for p in text.split(",") if p.strip()]
    if not policies:
        raise PolicyError("name at least one policy, e.g. static,every:4,drift")
    names = [p.name for p in policies]
    if len(set(names)) < len(names):
        raise PolicyError(f"a policy is named twice: {names}")
    return policies


class Retrain(TypedDict):
    """One retrain of a policy's replay."""

    end: str
    start: str
    reason: str
    promoted: bool
    version: int | None
    champion: int | None  # after the retrain
    detail: str  # why it was promoted or not, or why it failed
    seconds: float


class Interval(TypedDict):
    """One replayed interval of a policy."""

    start: str
    end: str
    state: str  # monitored | quarantined | failed
    rows: int | None
    champion: int | None  # the version that scored it
    metric: float | None
    labelled_rows: int
    business: float | None
    drift: bool | None
    drift_share: float | None
    detail: str | None
    rolled_back: bool


@dataclass
class Replay:
    """A policy's replay as it goes: what it saw per interval, and what it did."""

    policy: Policy
    intervals: list[Interval] = field(default_factory=list)
    retrains: list[Retrain] = field(default_factory=list)
    seconds: float = 0.0
    retrain_seconds: float = 0.0

    def record(self) -> dict:
        drifted = [i["start"] for i in self.intervals if i["drift"]]
        done = [r for r in self.retrains if r["reason"] != "initial"]
        return {
            "policy": self.policy.name,
            "retrains": [r["end"] for r in done],
            "promotions": [r["end"] for r in done if r["promoted"]],
            "metric": {i["start"]: i["metric"] for i in self.intervals},
            "business": {i["start"]: i["business"] for i in self.intervals},
            "drift_share": {i["start"]: i["drift_share"] for i in self.intervals},
            "drifted": drifted,
            "rollbacks": [i["start"] for i in self.intervals if i["rolled_back"]],
            "intervals": self.intervals,
            "retrain_runs": self.retrains,
            "compute_seconds": round(self.seconds, 2),
            "retrain_seconds": round(self.retrain_seconds, 2),
        }


@contextlib.contextmanager
def private_mlflow(folder: Path, experiments: list[str]) -> Iterator[str]:
    """Points MLflow at a SQLite store of its own under ``folder`` for the block, with each of
    ``experiments`` keeping its artifacts there too, and back to what it was after."""
    import mlflow  # after include.registry (imported above), which quiets MLflow first

    folder.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{(folder / 'mlflow.db').resolve()}"
    before = os.environ.get("MLFLOW_TRACKING_URI")  # set_tracking_uri keeps it there
    mlflow.set_tracking_uri(uri)
    try:
        client = registry.client()
        for name in experiments:
            if client.get_experiment_by_name(name) is None:
                client.create_experiment(name, artifact_location=(folder / "artifacts" / name).resolve().as_uri())
        yield uri
    finally:
        mlflow.set_tracking_uri(before)  # None: unset again


class Replayer:
    """Runs one policy over the intervals with the pipeline's own functions (see the module)."""

    def __init__(self, settings: Settings, policy: Policy, work: Path, say: Callable[[str], None] = lambda _: None) -> None:
        self.policy, self.work, self.say = policy, work, say
        self.settings = settings.model_copy(update={"storage": str((work / "storage").resolve())})
        self.replay = Replay(policy)

    # -- the steps, as the DAGs' tasks call them -----------------------------------------------
    def ingest(self, window: Window, run_id: str) -> tuple[bool, str | None]:
        """The ``ingest`` DAG on ``window``: gate and publish. False with the reason when the gate
        refused the batch (quarantined, as in production)."""
        from include import ingestion

        # "now" is the real now, not the interval's end: the history is replayed after it all
        # landed (one export may span every interval), and event times later than today are still refused
        run = {"dag_id": "ingest", "run_id": run_id, "user": "backtest", "at": datetime.now(UTC).isoformat()}
        try:
            ingestion.check_landing(self.settings, window, run)
        except DataError as err:
            return False, _brief(err)
        ingestion.publish(self.settings, window, run)
        return True, None

    def retrain(self, window: Window, reason: str, run_id: str) -> Retrain:
        """The ``retrain`` DAG on ``window``: gate, train, evaluate, promote (approved when the
        config asks for approval), retain."""
        from include import moves, retraining

        began = time.perf_counter()
        settings = self.settings
        record = Retrain(end=window.end.isoformat(), start=window.start.isoformat(), reason=reason, promoted=False, version=None)
        try:
            gated = retraining.gate_window(settings, window)
            trained = retraining.train_challenger(settings, window, reason, run_id, gated)
            comparison = retraining.evaluate_challenger(settings, window, trained)
            result = moves.promote(settings, trained, comparison, run_id)
            record.update(promoted=result["promoted"], version=trained["version"], champion=result["champion"], detail=result["reason"])
        except DataError as err:
            record.update(champion=self.champion(), detail=f"retrain failed: {_brief(err)}")
        finally:
            moves.retain(settings, window.end.isoformat())
        record["seconds"] = round(time.perf_counter() - began, 2)
        self.replay.retrain_seconds += record["seconds"]
        self.replay.retrains.append(record)
        return record

    def monitor(self, window: Window, run_id: str) -> Interval:
        """The ``monitor`` DAG on ``window``: score, verdict, guard, rollout."""
        from include import monitoring, moves, rollout

        settings = self.settings
        try:
            scored = monitoring.score_interval(settings, window)
            verdict = monitoring.check_drift(settings, window, scored)
        except (monitoring.NoChampion, DataError) as err:
            return self._interval(window, "failed", detail=_brief(err))
        guarded = moves.guard_champion(settings, run_id)
        rollout.rollout_step(settings, run_id)
        worth = verdict.get("business") or {}
        return self._interval(
            window,
            "monitored",
            rows=scored["rows"],
            champion=scored["model_version"],
            metric=scored["live_metric"],
            labelled_rows=scored["labelled_rows"],
            business=worth.get("value"),
            drift=verdict["drift"],
            drift_share=verdict["drift_share"],
            rolled_back=guarded["rolled_back"],
        )

    def drift_trigger(self) -> tuple[Window, str] | None:
        """What ``drift_watch`` would start now: the window and run id of a drift retrain, its
        verdicts marked handled; or None."""
        from include import monitoring

        pending = monitoring.find_pending_drift(self.settings)
        if pending is None:
            return None
        monitoring.mark_handled(self.settings, pending, pending["retrain_run_id"])
        return Window.parse(pending["start"], pending["end"]), pending["retrain_run_id"]

    def champion(self) -> int | None:
        from include.champion import champion_now

        return champion_now(self.settings.name)

    def _interval(self, window: Window, state: str, **values) -> Interval:
        base = Interval(
            start=window.start.isoformat(),
            end=window.end.isoformat(),
            state=state,
            rows=None,
            champion=None,
            metric=None,
            labelled_rows=0,
            business=None,
            drift=None,
            drift_share=None,
            detail=None,
            rolled_back=False,
        )
        return {**base, **values}

    # -- the whole replay -----------------------------------------------------------------------
    def run(self, windows: list[Window]) -> Replay:
        settings, policy = self.settings, self.policy
        began = time.perf_counter()
        name = settings.name
        with private_mlflow(self.work / "mlflow", [name, f"{name}-monitoring"]):
            first = Window(windows[0].start - settings.training.window, windows[0].start)
            passed, why = self.ingest(first, "backtest__history")
            if not passed:
                raise DataError(f"the history before the first interval {first.as_dict()} fails the gate: {why}")
            initial = self.retrain(first, "initial", "backtest__initial")
            self.say(f"[{policy.name}] first model v{initial['version']} on {first.key}: {initial['detail']}")
            for position, window in enumerate(windows):
                run_id = f"backtest__{window.key}"
                passed, why = self.ingest(window, run_id)
                interval = self.monitor(window, run_id) if passed else self._interval(window, "quarantined", detail=why)
                self.replay.intervals.append(interval)
                done = []
                if policy.drift and passed:
                    trigger = self.drift_trigger()
                    if trigger is not None:
                        done.append(self.retrain(trigger[0], "drift", trigger[1]))
                if policy.scheduled(position) and not done:
                    end = window.end
                    done.append(
                        self.retrain(Window(end - settings.training.window, end), "schedule", f"scheduled__{window.end.isoformat()}")
                    )
                self.say(_progress_line(policy, position, len(windows), interval, done, settings.model.metric))
        self.replay.seconds = time.perf_counter() - began
        return self.replay


def _brief(err: Exception, lines: int = 4) -> str:
    """An error's first lines on one line: a gate's names the failed checks after its headline."""
    return " ".join(line.strip() for line in str(err).splitlines()[:lines] if line.strip())


def _warm_up() -> None:
    """Imports what every replay uses (scikit-learn, GX, MLflow, Delta Lake) before the first
    policy's clock starts, so that it does not pay for the others."""
    from include import ingestion, moves, quality, retraining, rollout  # noqa: F401

    quality._import_gx()
    import deltalake  # noqa: F401
    import mlflow.sklearn  # noqa: F401
    import sklearn.ensemble  # noqa: F401


def _progress_line(policy: Policy, position: int, total: int, interval: Interval, done: list[Retrain], metric: str) -> str:
    shown = f"{interval['metric']:.4f}" if interval["metric"] is not None else "n/a"
    line = f"[{policy.name}] {position + 1}/{total} {interval['start'][:10]}: {interval['state']}"
    if interval["state"] == "monitored":
        line += f", v{interval['champion']} {metric} {shown}, drift share {interval['drift_share']:.2f}"
    elif interval["detail"]:
        line += f" ({interval['detail'][:120]})"
    for r in done:
        line += f"; {r['reason']} retrain on {r['start'][:10]}..{r['end'][:10]}: " + ("promoted" if r["promoted"] else "kept")
    return line


# -- the whole backtest ------------------------------------------------------------------------


def backtest(
    settings: Settings, windows: list[Window], policies: list[Policy], work: Path, say: Callable[[str], None] = lambda _: None
) -> dict:
    """Replays ``windows`` once per policy (each in ``work/<policy>``) and puts the results side
    by side: ``{"policies": {name: Replay.record()}, "onsets": [...], ...}`` (see ``onsets``)."""
    from include import provenance

    records = {}
    _warm_up()
    for policy in policies:
        say(f"[{policy.name}] replaying {len(windows)} intervals from {windows[0].start:%Y-%m-%d} to {windows[-1].end:%Y-%m-%d}")
        records[policy.name] = Replayer(settings, policy, work / safe_name(policy.name), say).run(windows).record()
    reference = "static" if "static" in records else policies[0].name
    business = settings.business.metric if settings.business is not None else None
    return {
        "name": settings.name,
        "config": settings.source,
        "config_digest": provenance.config_digest(settings),
        "code_version": provenance.code_version(),
        "metric": settings.model.metric,
        "business_metric": business,
        "drift_share": settings.monitoring.drift_share,
        "intervals": [w.as_dict() for w in windows],
        "onsets": onsets(records[reference]["intervals"]),
        "onsets_from": reference,
        "policies": records,
    }


def onsets(replayed: list[Interval]) -> list[str]:
    """The starts of the intervals where a drift began: drifted, after one that was not (or
    first). Read from one policy's verdicts (``static``'s when it ran: its reference never moves,
    so its drift says how far the world is from the first model's)."""
    out, before = [], False
    for interval in replayed:
        now = bool(interval["drift"])
        if now and not before:
            out.append(interval["start"])
        before = now if interval["drift"] is not None else before
    return out


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def phases(result: dict) -> list[tuple[str, str | None, str | None]]:
    """The spans the summary averages over: before the first onset, then from each onset to the
    next: ``(label, from, to)`` with ISO interval starts, ``to`` excluded."""
    starts = [i["start"] for i in result["intervals"]]
    cuts = result["onsets"]
    if not cuts:
        return [("all intervals", starts[0], None)]
    out = []
    if cuts[0] != starts[0]:
        out.append((f"before {cuts[0][:10]}", starts[0], cuts[0]))
    for n, cut in enumerate(cuts):
        out.append((f"from {cut[:10]}", cut, cuts[n + 1] if n + 1 < len(cuts) else None))
    return out


def summary_rows(result: dict) -> list[dict]:
    """One row per policy: retrains, promotions, the mean metric per phase and overall, the mean
    business value, compute seconds."""
    rows = []
    spans = phases(result)
    for name, record in result["policies"].items():
        metric = record["metric"]
        row = {
            "policy": name,
            "retrains": len(record["retrains"]),
            "promotions": len(record["promotions"]),
            "mean": _mean(list(metric.values())),
            "phases": {label: _mean([v for k, v in metric.items() if k >= lo and (hi is None or k < hi)]) for label, lo, hi in spans},
            "business": _mean(list(record["business"].values())),
            "rollbacks": len(record["rollbacks"]),
            "seconds": record["compute_seconds"],
            "retrain_seconds": record["retrain_seconds"],
        }
        rows.append(row)
    return rows


def _number(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def summary_table(result: dict) -> str:
    """The policies side by side as a Markdown table (also what the command prints)."""
    rows = summary_rows(result)
    spans = [label for label, _, _ in phases(result)]
    head = ["policy", *(f"{result['metric']} {s}" for s in spans), f"{result['metric']} overall", "retrains", "promoted"]
    if result["business_metric"]:
        head.append(result["business_metric"])
    head += ["rollbacks", "compute s (retrain s)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for row in rows:
        cells = [
            row["policy"],
            *(_number(row["phases"][s]) for s in spans),
            _number(row["mean"]),
            str(row["retrains"]),
            str(row["promotions"]),
        ]
        if result["business_metric"]:
            cells.append(_number(row["business"]))
        cells += [str(row["rollbacks"]), f"{row['seconds']:.1f} ({row['retrain_seconds']:.1f})"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_markdown(result: dict) -> str:
    """``summary.md``: what was replayed, the table, and when each policy retrained."""
    windows = result["intervals"]
    every = result["policies"]
    lines = [
        f"# Backtest of {result['name']}: {len(windows)} intervals from {windows[0]['start'][:10]} to {windows[-1]['end'][:10]}",
        "",
        f"Config `{result['config']}` (digest `{result['config_digest'][:12]}`), code `{result['code_version']}`.",
        "",
    ]
    if result["onsets"]:
        found = ", ".join(o[:10] for o in result["onsets"])
        lines.append(f"Drift onsets the monitor found (policy `{result['onsets_from']}`, drift share >= {result['drift_share']}): {found}.")
    else:
        lines.append(f"The monitor found no drift onset (policy `{result['onsets_from']}`).")
    lines += ["", summary_table(result), "", "## Retrains", ""]
    for name, record in every.items():
        runs = [r for r in record["retrain_runs"] if r["reason"] != "initial"]
        if not runs:
            lines.append(f"- `{name}`: none")
            continue
        lines.append(f"- `{name}`:")
        for r in runs:
            state = "promoted" if r["promoted"] else "not promoted"
            lines.append(
                f"  - {r['reason']} at {r['end'][:10]} on {r['start'][:10]}..{r['end'][:10]}: v{r['version']} {state} ({r['detail']})"
            )
    skipped = {n: [i for i in r["intervals"] if i["state"] != "monitored"] for n, r in every.items()}
    if any(skipped.values()):
        lines += ["", "## Intervals not monitored", ""]
        for name, items in skipped.items():
            for i in items:
                lines.append(f"- `{name}` {i['start'][:10]}: {i['state']} ({i['detail']})")
    lines += ["", "![policies](policies.png)", ""]
    return "\n".join(lines)


def write_outputs(result: dict, out: Path) -> dict[str, Path]:
    """``result.json``, ``policies.png`` and ``summary.md`` into ``out`` (created)."""
    import json

    from include import charts

    out.mkdir(parents=True, exist_ok=True)
    paths = {"result": out / "result.json", "picture": out / "policies.png", "summary": out / "summary.md"}
    paths["result"].write_text(json.dumps(result, indent=2, default=str))
    paths["picture"].write_bytes(charts.policies_chart(result))
    paths["summary"].write_text(summary_markdown(result))
    return paths


def log_to_mlflow(result: dict, paths: dict[str, Path]) -> str:
    """One run in the experiment ``<name>-backtest`` of the MLflow that ``MLFLOW_TRACKING_URI``
    names, with a child run per policy (the metric, drift share and business value per interval,
    step = the interval's number; retrains and promotions as metrics); the outputs as artifacts.

    Returns:
        The parent run's id.
    """
    client = registry.client()
    experiment = registry.experiment_id(f"{result['name']}-backtest")
    windows = result["intervals"]
    tags = {
        "driftloop.start": windows[0]["start"],
        "driftloop.end": windows[-1]["end"],
        "driftloop.config_digest": result["config_digest"],
        "driftloop.code_version": result["code_version"],
        "mlflow.runName": f"backtest {windows[0]['start'][:10]}..{windows[-1]['end'][:10]}",
    }
    parent = client.create_run(experiment, tags=tags).info.run_id
    client.log_param(parent, "policies", ",".join(result["policies"]))
    client.log_param(parent, "intervals", len(windows))
    for path in paths.values():
        client.log_artifact(parent, str(path))
    rows = {row["policy"]: row for row in summary_rows(result)}
    for name, record in result["policies"].items():
        child = client.create_run(
            experiment, tags={"mlflow.parentRunId": parent, "mlflow.runName": name, "driftloop.policy": name}
        ).info.run_id
        for step, window in enumerate(windows):
            for key, series in (("metric", result["metric"]), ("drift_share", "drift_share"), ("business", result["business_metric"])):
                value = record[key].get(window["start"])
                if value is not None and series:
                    client.log_metric(child, series, value, step=step)
        row = rows[name]
        for key in ("retrains", "promotions", "rollbacks", "seconds", "retrain_seconds"):
            client.log_metric(child, key, row[key])
        if row["mean"] is not None:
            client.log_metric(child, f"mean_{result['metric']}", row["mean"])
        client.set_terminated(child)
    client.set_terminated(parent)
    return parent
