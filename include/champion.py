"""The champion state machine: who is champion, what was moved, what may move next.

State lives on the registered model in MLflow: the alias ``@champion`` (and ``@candidate`` for a
version under staged rollout), the champion history (a model tag, one entry per move), one move
record per Airflow run (a model tag), and the running rollout (a model tag).

Every move of ``@champion`` (a promotion, a rollback by hand or by the guard, the end of a
rollout) is a ``MovePlan``: recorded on the registered model before anything moves
(``plan_move``, ``record_move``), then applied by ``carry_out`` as a compare-and-set: only while
``@champion`` is still the version the plan starts from (or already the one it ends at: a retry),
history first, then the alias, then the plan is marked applied. A worker killed at any point
leaves a plan its retry completes; an applied plan is never applied again. MLflow has no atomic
compare-and-set on aliases: the one-slot Airflow pool ``driftloop_registry`` keeps driftloop's own
moves from interleaving, and the check catches moves made between a decision and its move (a
rollback during an approval wait).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Literal, NotRequired, TypedDict

from include import registry
from include.errors import RegistryError
from include.registry import CANDIDATE, CHAMPION, alias_version, client

log = logging.getLogger(__name__)


HISTORY_TAG = "driftloop.champion_history"


ARCHIVED_TAG = "driftloop.archived"


ROLLOUT_TAG = "driftloop.rollout"


def rollout_record(name: str) -> dict | None:
    """The running rollout (``include.rollout.Rollout``), or None: the model tag, and only while
    ``@candidate`` still points at its version (a tag left by a half-finished end counts as none)."""
    tags = registry.model_tags(name)
    record = json.loads(tags[ROLLOUT_TAG]) if tags.get(ROLLOUT_TAG) else None
    if record is None:
        return None
    candidate = alias_version(name, CANDIDATE)
    return record if candidate is not None and candidate.version == record["version"] else None


def start_rollout(name: str, record: dict) -> None:
    """Points ``@candidate`` at the record's version and stores the record (idempotent)."""
    c = client()
    c.set_registered_model_alias(name, CANDIDATE, str(record["version"]))
    c.set_registered_model_tag(name, ROLLOUT_TAG, json.dumps(record, sort_keys=True))
    c.set_model_version_tag(name, str(record["version"]), "driftloop.decision", record["strategy"])
    log.info("%s v%d under %s rollout (@%s)", name, record["version"], record["strategy"], CANDIDATE)


def end_rollout(name: str, version: int, outcome: str, reason: str) -> None:
    """Ends the rollout of ``version``: its ``driftloop.rollout`` version tag says how (promoted,
    retired), ``@candidate`` and the model's record are removed (idempotent)."""
    c = client()
    c.set_model_version_tag(name, str(version), ROLLOUT_TAG, f"{outcome}: {reason}")
    if outcome != "promoted":
        c.set_model_version_tag(name, str(version), "driftloop.decision", outcome)
    candidate = alias_version(name, CANDIDATE)
    if candidate is not None and candidate.version == version:
        c.delete_registered_model_alias(name, CANDIDATE)
    tags = c.get_registered_model(name).tags or {}
    if tags.get(ROLLOUT_TAG) and json.loads(tags[ROLLOUT_TAG])["version"] == version:
        c.delete_registered_model_tag(name, ROLLOUT_TAG)
    log.info("%s v%d: rollout ended, %s (%s)", name, version, outcome, reason)


def archive_versions(name: str, keep: int, protected: set[int], when: str) -> list[int]:
    """Archives the versions of ``name`` beyond the newest ``keep`` (``to_archive``):
    each is tagged ``driftloop.archived`` with why and when, and loses its aliases; its run and
    artifacts stay, so it can still be loaded, compared or rolled back to. The holders of
    ``@champion`` and ``@candidate`` (a version under rollout) are protected as well as
    ``protected``. Idempotent: archived versions are passed over.

    Returns:
        The versions archived now.
    """
    from include.champion import to_archive

    c = client()
    found = c.search_model_versions(f"name = '{name}'")
    aliases = c.get_registered_model(name).aliases or {}
    held = {int(v) for alias, v in aliases.items() if alias in (CHAMPION, CANDIDATE)}
    archived = {int(v.version) for v in found if ARCHIVED_TAG in (v.tags or {})}
    chosen = to_archive([int(v.version) for v in found], keep, protected | held, archived)
    for version in chosen:
        c.set_model_version_tag(
            name, str(version), ARCHIVED_TAG, f"{when}: beyond registry.keep={keep} (the newest {keep} and the champions stay)"
        )
        for alias in c.get_model_version(name, str(version)).aliases or []:
            c.delete_registered_model_alias(name, alias)
        log.info("%s v%d archived (registry.keep=%d)", name, version, keep)
    return chosen


def champion_history(name: str) -> list[int]:
    tags = client().get_registered_model(name).tags or {}
    return json.loads(tags.get(HISTORY_TAG, "[]"))


def settled_history(history: list[int], champion: int | None) -> list[int]:
    """The champion history up to where ``@champion`` is: its entries after the champion's last
    one belong to a move that was written but never completed (a worker killed between the
    history and the alias writes of ``set_champion``); the move's retry completes them. With the
    champion absent from the history (an alias set by hand in MLflow) it is returned whole."""
    if champion is None or champion not in history:
        return list(history)
    return history[: len(history) - history[::-1].index(champion)]


def previous_champion(name: str, champion: int) -> int | None:
    """The champion before ``champion`` in the champion history (the shadow), or None."""
    history = settled_history(champion_history(name), champion)
    if len(history) < 2 or history[-1] != champion or history[-2] == champion:
        return None
    return history[-2]


def set_champion(name: str, version: int, history: list[int] | None = None) -> list[int]:
    """Records the champion history (a model tag), then points ``@champion`` at ``version``.

    History first: a crash between the two writes leaves the history one move ahead of the alias,
    which the move's retry completes and every reader tolerates (``settled_history``), while the
    other order would leave a champion the history does not know (no shadow, no rollback).

    Args:
        name: the registered model.
        version: the new champion.
        history: the history to store; by default the settled one with ``version`` appended.

    Idempotent: what is already in place is not written again.
    Returns the history.
    """
    c = client()
    stored = champion_history(name)
    current = alias_version(name, CHAMPION)
    if history is None:
        settled = settled_history(stored, current.version if current else None)
        history = settled if settled[-1:] == [version] else [*settled, version]
    if stored != history:
        c.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
    c.set_model_version_tag(name, str(version), "driftloop.champion", "true")
    if current is None or current.version != version:
        c.set_registered_model_alias(name, CHAMPION, str(version))
        log.info("%s@%s -> version %d (history %s)", name, CHAMPION, version, history)
    return history


def _move_tag(airflow_run_id: str) -> str:
    from include.storage import safe_name

    return "driftloop.move." + safe_name(airflow_run_id)


def recorded_move(name: str, airflow_run_id: str) -> dict | None:
    """What an Airflow run already planned or did to ``@champion`` (promote or rollback), if anything.

    A cleared and re-run ``promote`` or ``rollback`` task returns this instead of moving the alias
    a second time (a rollback re-run would otherwise step back once more). Only "no such
    registered model" means "nothing recorded"; any other MLflow error (the server down, a
    timeout) propagates, so the task fails and Airflow retries it.
    """
    value = registry.model_tags(name).get(_move_tag(airflow_run_id))
    return upgraded_move(json.loads(value)) if value else None


def upgraded_move(record: dict) -> dict:
    """A move record as the current code reads it. Records written before move plans had no
    ``action`` and ``reason``, and a guard's rollback kept its target as ``champion``, not ``to``;
    a run cleared after an upgrade must still find what it did. A promote's decision record
    (``promoted``/``champion``, no ``history``) is read as it is."""
    if "history" not in record:
        return record
    record = dict(record)
    if "to" not in record:
        record["to"] = record["champion"]
    record.setdefault("action", "rollback")
    record.setdefault("reason", f"{record['action']} to v{record['to']}")
    record.setdefault("applied", False)
    return record


def record_move(name: str, airflow_run_id: str, result: dict) -> dict:
    client().set_registered_model_tag(name, _move_tag(airflow_run_id), json.dumps(result, sort_keys=True))
    return result


def rollback_plan(name: str, requested: int | None) -> tuple[int, list[int]]:
    """Where a rollback takes ``@champion`` and the champion history afterwards.

    Without ``requested`` the current champion is dropped from the (settled) history and the one
    before it returns; a requested version is appended like any promotion.

    Raises:
        RegistryError: no earlier champion exists, or the requested version does not exist.
    """
    from mlflow.exceptions import MlflowException

    from include.errors import RegistryError

    current = alias_version(name, CHAMPION)
    history = settled_history(champion_history(name), current.version if current else None)
    if requested is not None:
        try:
            registry.get_version(name, requested)
        except MlflowException as err:
            if not registry.is_missing(err):
                raise
            raise RegistryError(f"{name} has no version {requested}") from None
        return int(requested), [*history, int(requested)]
    remaining = history[:-1] if current is not None and history and history[-1] == current.version else history
    if not remaining:
        raise RegistryError(f"{name}: no earlier champion to roll back to (champion history {history})")
    return remaining[-1], remaining


class ChampionMoved(RegistryError):
    """``@champion`` is no longer the version a move was planned from (someone promoted or rolled
    back meanwhile): the move is refused rather than undo theirs."""


# "from" is a Python keyword, hence the functional form
MovePlan = TypedDict(
    "MovePlan",
    {
        "action": Literal["promote", "rollback"],
        "from": int | None,  # @champion when the move was decided (the compare-and-set's expected value)
        "to": int,
        "history": list[int],  # the champion history once the move is done
        "reason": str,
        "applied": bool,
        "verdicts": NotRequired[list[str]],  # a guard's rollback: the verdicts that showed the degradation
    },
)


class MoveResult(MovePlan):
    """An applied move as a task returns it: the plan plus the new champion's MLflow page."""

    mlflow_url: str | None


def to_archive(versions: list[int], keep: int, protected: set[int], archived: set[int]) -> list[int]:
    """The versions retention archives: all but the newest ``keep``, leaving out the ``protected``
    ones (the champion, the previous champion, a version under rollout) and those already
    archived. Pure; in ascending order."""
    newest = set(sorted(versions)[-keep:])
    return sorted(v for v in versions if v not in newest and v not in protected and v not in archived)


def plan_move(
    name: str, action: Literal["promote", "rollback"], to: int, expected: int | None, reason: str, history: list[int] | None = None
) -> MovePlan:
    """A move of ``name@champion`` from ``expected`` to ``to``, not yet recorded nor applied.

    Args:
        name: the registered model.
        action: what the move is, for the record.
        to: the version that becomes champion.
        expected: the version ``@champion`` must still be when the move is applied (None: no
            champion).
        reason: why, in words (goes into the record and the result).
        history: the champion history afterwards; by default the settled history with ``to``
            appended (unless it already ends with it).
    """
    if history is None:
        settled = settled_history(champion_history(name), expected)
        history = settled if settled[-1:] == [to] else [*settled, to]
    return {"action": action, "from": expected, "to": to, "history": history, "reason": reason, "applied": False}


def champion_now(name: str) -> int | None:
    current = registry.alias_version(name, registry.CHAMPION)
    return current.version if current else None


def carry_out(name: str, airflow_run_id: str, plan: MovePlan, then: Callable[[], None] | None = None) -> MovePlan:
    """Applies a recorded plan, once, as a compare-and-set on ``@champion``.

    Each step is idempotent, so a retry after a crash anywhere completes the move: the history and
    the alias (``set_champion``, history first), then ``then()`` (tags, marks), then the
    record is marked applied. An applied plan is returned as it is: a run cleared long after,
    when someone may have moved the champion on or back, does not move it again.

    Returns:
        The plan, ``applied`` when the move is done.

    Raises:
        ChampionMoved: ``@champion`` is neither the plan's ``from`` nor its ``to``.
    """
    if plan.get("applied"):
        return plan
    now = champion_now(name)
    if now not in (plan["from"], plan["to"]):
        was = f"v{plan['from']}" if plan["from"] is not None else "unset"
        is_now = f"is v{now} now" if now is not None else "was removed"
        raise ChampionMoved(
            f"{name}@champion {is_now}, but this {plan.get('action', 'move')} to v{plan['to']} was decided when it was {was}: "
            f"refused rather than undo that move. Re-run to decide against the current champion."
        )
    set_champion(name, plan["to"], plan["history"])
    if then is not None:
        then()
    applied: MovePlan = {**plan, "applied": True}
    record_move(name, airflow_run_id, applied)
    log.info("%s@champion: v%s -> v%s (%s)", name, plan["from"], plan["to"], plan["action"])
    return applied
