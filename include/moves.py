"""The tasks that move ``@champion`` or take a version out of the running, each once per Airflow
run on the state machine of ``include.champion``: retrain's ``promote`` (at once, or into a staged
rollout) and ``retain``; monitor's ``guard`` (the automatic rollback) and ``rollout`` (promote or
retire the candidate on live rows); the ``rollback`` DAG's move. Each returns a small typed,
JSON-able result whose ``kind`` names what it is (``include.alerts`` reads it).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal, NotRequired, TypedDict

from include import cards, promotion, registry, rollout, tracking
from include.champion import (
    ChampionMoved,
    MovePlan,
    MoveResult,
    archive_versions,
    carry_out,
    champion_now,
    plan_move,
    previous_champion,
    record_move,
    recorded_move,
    rollback_plan,
)
from include.monitoring import degradation, mark_demoted
from include.promotion import PromotionResult, decided
from include.storage import Storage

if TYPE_CHECKING:
    from include.config import Settings

log = logging.getLogger(__name__)


# "from" is a Python keyword, hence the functional form
GuardResult = TypedDict(
    "GuardResult",
    {
        "kind": Literal["guard"],
        "degraded": bool,
        "rolled_back": bool,  # only when @champion moved back (now or in an earlier attempt)
        "champion": int | None,  # @champion after the guard
        "reason": str,
        "mlflow_url": str | None,
        "mode": NotRequired[Literal["auto", "manual", "stale"]],
        "from": NotRequired[int],  # a rollback: the demoted champion
        "evidence": NotRequired[list[str]],  # the intervals behind a degraded verdict (keys its alert)
    },
)
"""What monitor's ``guard`` found and did."""


def promote(settings: Settings, trained: dict, comparison: dict, airflow_run_id: str) -> PromotionResult:
    """Moves ``@champion`` to the challenger when the comparison says it is better, and only while
    ``@champion`` is still the version it was compared with (``comparison["champion_version"]``).

    Done once per Airflow run: the plan is recorded first, so a retry after a crash completes it
    and a re-run of the task returns what the first run did.

    Returns:
        ``{"promoted", "champion", "reason", "mlflow_url"}`` (the champion version's page).

    Raises:
        ChampionMoved: ``@champion`` changed since the comparison (a promotion or rollback
            meanwhile, say during the approval wait): nothing moves.
    """
    name = settings.name
    done = recorded_move(name, airflow_run_id)
    refused_by = [c["check"] for c in comparison.get("checks", []) if not c["passed"] and c["check"] in promotion.GATES]
    if done is None and not comparison["better"]:
        registry.client().set_model_version_tag(name, str(trained["version"]), "driftloop.decision", "rejected")
        keep = {"action": "keep", "champion": champion_now(name), "reason": comparison["reason"], "refused_by": refused_by}
        done = record_move(name, airflow_run_id, keep)
    strategy = settings.promotion.strategy
    if done is None and strategy != "direct" and comparison["champion_version"] is not None:
        how = "better on" if strategy == "shadow" else f"not worse, serving {settings.promotion.canary_share:.0%} of the rows, on"
        staged = {
            "action": "rollout",
            "strategy": strategy,
            "candidate": trained["version"],
            "champion": comparison["champion_version"],
            "reason": f"{comparison['reason']}; under {strategy} rollout: promoted once {how} {settings.promotion.min_rows} labelled live rows",
        }
        done = record_move(name, airflow_run_id, staged)
    if done is None:
        plan = plan_move(name, "promote", trained["version"], comparison["champion_version"], comparison["reason"])
        done = record_move(name, airflow_run_id, plan)
    if done.get("action") == "rollout":
        rollout.begin_rollout(settings, done, airflow_run_id)
        result = decided(
            promoted=False,
            champion=done["champion"],
            reason=done["reason"],
            challenger=trained["version"],
            rollout=done["strategy"],
        )
    elif "to" not in done:  # a decision to keep the champion (or a record from before move plans)
        result = decided(
            bool(done.get("promoted")), done["champion"], done["reason"], trained["version"], refused_by=done.get("refused_by", [])
        )
    else:
        plan: MovePlan = done

        def tag() -> None:
            registry.client().set_model_version_tag(name, str(plan["to"]), "driftloop.decision", "promoted")

        applied = carry_out(name, airflow_run_id, plan, then=tag)
        result = decided(
            promoted=True,
            champion=applied["to"],
            reason=applied["reason"],
            challenger=trained["version"],
        )
    before = comparison.get("champion_version") if result["promoted"] else result["champion"]
    state = (
        "promoted" if result["promoted"] else ("rollout" if result.get("rollout") else "refused" if result.get("refused_by") else "kept")
    )
    decision = cards.Decision(state=state, reason=result["reason"], champion_before=before, refused_by=result.get("refused_by", []))
    tracking.update_card(settings, trained, decision=decision)
    return {**result, "mlflow_url": registry.version_url(name, result["champion"])}


class RetainResult(TypedDict):
    """What retrain's ``retain`` returns."""

    kind: Literal["retention"]
    archived: list[int]  # the versions archived now
    keep: int


def retain(settings: Settings, when: str) -> RetainResult:
    """Archives registered versions beyond ``registry.keep`` (``archive_versions``); the
    champion, the previous champion and a version under rollout (``@candidate``) are never archived.

    Args:
        when: the run's time, written into the archive tag.

    Returns:
        ``{"archived": [versions], "keep"}``.
    """
    name = settings.name
    if not registry.model_exists(name):
        return RetainResult(kind="retention", archived=[], keep=settings.registry.keep)
    protected = set()
    champion = registry.alias_version(name, registry.CHAMPION)
    if champion is not None:
        protected.add(champion.version)
        previous = previous_champion(name, champion.version)
        if previous is not None:
            protected.add(previous)
    archived = archive_versions(name, settings.registry.keep, protected, when)
    return RetainResult(kind="retention", archived=archived, keep=settings.registry.keep)


def rollback(settings: Settings, version: int | None, airflow_run_id: str) -> MoveResult:
    """Points ``@champion`` back at the previous champion, or at ``version``; once per Airflow run
    (re-running the task does not step back a second time).

    Returns:
        The applied plan (``from``, ``to``, ``history``, ...) and the new champion's ``mlflow_url``.

    Raises:
        RegistryError: there is nothing to roll back to, or no such version.
        ChampionMoved: a recorded rollback of this run was not applied and ``@champion`` has
            moved since it was planned.
    """
    name = settings.name
    done = recorded_move(name, airflow_run_id)
    if done is None:
        target, history = rollback_plan(name, version)
        why = f"rollback to v{target}" + (" (requested)" if version is not None else " (the previous champion)")
        plan = plan_move(name, "rollback", target, champion_now(name), why, history)
        done = record_move(name, airflow_run_id, plan)
    applied = carry_out(name, airflow_run_id, done)
    return {**applied, "mlflow_url": registry.version_url(name, applied["to"])}


def guard_champion(settings: Settings, airflow_run_id: str) -> GuardResult:
    """The automatic rollback: after each monitor run, checks whether ``@champion`` has trailed its
    shadow (the previous champion) on the live metric (see ``monitoring.degradation``).

    With ``monitoring.rollback: auto`` a degraded champion is rolled back to the shadow, the demoted
    version is tagged ``driftloop.demoted`` with the reason, and the verdicts that showed it are
    marked so they never count again; with ``manual`` the evidence is only reported. Once per
    Airflow run, like any alias move; a recorded rollback that ``@champion`` has since moved away
    from is reported, not applied (``mode: stale``).

    Returns:
        A ``GuardResult``; a degraded champion also has ``evidence`` (the intervals behind it),
        which keys its alert.
    """
    name = settings.name
    planned = recorded_move(name, airflow_run_id)
    if planned is not None:  # a retry or a re-run: finish what was planned, if it still stands
        return _apply_rollback(settings, planned, airflow_run_id)
    champion = registry.alias_version(name, registry.CHAMPION)
    if champion is None:
        return GuardResult(kind="guard", degraded=False, rolled_back=False, champion=None, reason="no champion", mlflow_url=None)
    mon = settings.monitoring
    verdicts = Storage.from_settings(settings).verdicts()
    evidence = degradation(verdicts, champion.version, mon.rollback_margin, mon.rollback_intervals, settings.promotion.min_rows)
    if evidence is None:
        reason = f"champion v{champion.version} does not trail a shadow in the last {mon.rollback_intervals} labelled intervals"
        return GuardResult(kind="guard", degraded=False, rolled_back=False, champion=champion.version, reason=reason, mlflow_url=None)
    held = GuardResult(
        kind="guard",
        degraded=True,
        rolled_back=False,
        champion=champion.version,
        reason=evidence["reason"],
        mlflow_url=None,
        evidence=evidence["verdicts"],
    )
    if mon.rollback == "manual":
        log.warning("%s; monitoring.rollback is manual: run the rollback DAG to act on it", evidence["reason"])
        return {**held, "mode": "manual"}
    target, history = rollback_plan(name, None)
    if target != evidence["shadow"]:
        # the champion history moved since the verdicts were written (a promote or a rollback in
        # another DAG): do nothing on stale evidence
        reason = f"{evidence['reason']}; not rolled back: @champion or its history changed meanwhile (previous champion now v{target})"
        log.warning(reason)
        return {**held, "mode": "stale", "reason": reason}
    plan = plan_move(name, "rollback", target, champion.version, evidence["reason"], history)
    plan["verdicts"] = evidence["verdicts"]
    return _apply_rollback(settings, record_move(name, airflow_run_id, plan), airflow_run_id)


def _apply_rollback(settings: Settings, plan: MovePlan, airflow_run_id: str) -> GuardResult:
    """Carries out a guard's recorded rollback; the result says ``rolled_back`` only once it is
    applied (now or by an earlier attempt)."""
    name = settings.name

    def demote() -> None:
        registry.client().set_model_version_tag(name, str(plan["from"]), "driftloop.demoted", plan["reason"])
        mark_demoted(settings, plan["verdicts"], airflow_run_id)
        log.warning("rolled back: %s", plan["reason"])

    try:
        applied = carry_out(name, airflow_run_id, plan, then=demote)
    except ChampionMoved as err:  # someone moved @champion since the plan: their move stands
        log.warning("%s", err)
        now = champion_now(name)
        return GuardResult(
            kind="guard",
            degraded=True,
            rolled_back=False,
            champion=now,
            reason=f"{plan['reason']}; not rolled back: {err}",
            mlflow_url=None,
            mode="stale",
            evidence=plan["verdicts"],
        )
    return GuardResult(
        kind="guard",
        degraded=True,
        rolled_back=True,
        champion=applied["to"],
        reason=applied["reason"],
        mlflow_url=registry.version_url(name, applied["to"]),
        mode="auto",
        evidence=applied["verdicts"],
        **{"from": applied["from"]},
    )
