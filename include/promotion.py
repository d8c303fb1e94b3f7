"""Champion versus challenger: the comparison rule and the alias moves.

``compare`` and ``decide`` are pure. The comparison uses the rows of the challenger's last
time-based fold (rows its comparison model never trained on), minus any rows inside the
champion's own training window, so neither model is scored on rows it trained on.

Every move of ``@champion`` (a promotion, a rollback by hand or by the guard) is a ``MovePlan``:
recorded on the registered model before anything moves (``plan_move``, ``champion.record_move``),
then applied by ``carry_out`` as a compare-and-set: only while ``@champion`` is still the version
the plan starts from (or already the one it ends at: a retry), history first, then the alias,
then the plan is marked applied. A worker killed at any point leaves a plan its retry completes;
an applied plan is never applied again. MLflow has no atomic compare-and-set on aliases: the
one-slot Airflow pool ``driftloop_registry`` keeps driftloop's own moves from interleaving, and
the check catches moves made between a comparison and its promotion (a rollback during an
approval wait).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, NotRequired, TypedDict

import pandas as pd

from include import registry, training
from include.errors import DataError, DriftloopError
from include.training import score

if TYPE_CHECKING:
    from include.config import Settings

log = logging.getLogger(__name__)


class PromotionRejected(DriftloopError):
    """The challenger cannot be promoted; the message says why, with the numbers."""


def decided(promoted: bool, champion: int | None, reason: str, challenger: int, **more) -> PromotionResult:
    """A ``PromotionResult`` (its link is added by the caller, which knows the champion's page)."""
    return PromotionResult(
        kind="promotion", promoted=promoted, champion=champion, reason=reason, mlflow_url=None, challenger=challenger, **more
    )


CheckName = Literal["baseline", "champion", "fairness", "business"]
# checks a challenger must pass whatever its score against the champion
GATES: tuple[CheckName, ...] = ("baseline", "fairness", "business")


class Check(TypedDict):
    """One rule of the promotion decision, as the model card and the comparison record show it."""

    check: CheckName
    passed: bool
    detail: str


class Comparison(TypedDict):
    """What retrain's ``evaluate`` found: the challenger, the baseline and ``@champion`` scored on
    the same out-of-time rows, every check, and the decision."""

    rows: int
    rows_start: str | None
    rows_end: str | None
    challenger_score: float | None
    champion_score: float | None
    champion_version: int | None
    baseline_score: NotRequired[float | None]
    # {"challenger": FairnessResult, "champion": FairnessResult | None, "max_gap"} with fairness: set
    fairness: NotRequired[dict | None]
    # {"challenger": BusinessValue, "champion": BusinessValue | None, "max_drop"} with business: set
    business: NotRequired[dict | None]
    checks: list[Check]
    better: bool
    reason: str
    mlflow_url: NotRequired[str | None]
    card: NotRequired[str | None]  # the challenger's model card as evaluate left it (the approval shows it)


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    checks: list[Check] = field(default_factory=list)

    @property
    def refused_by(self) -> list[str]:
        return [c["check"] for c in self.checks if not c["passed"] and c["check"] in GATES]


def beats_baseline(challenger: float, baseline: float, metric: str, cv: tuple[float, float] | None = None) -> Check:
    """The challenger must score above the dummy baseline on the comparison rows and, when the
    CV means are given (challenger, baseline), on average over the same folds."""
    detail = f"challenger {metric} {challenger:.4f} against the baseline's {baseline:.4f} on the same rows"
    passed = challenger > baseline
    if cv is not None:
        detail += f"; CV mean {cv[0]:.4f} against {cv[1]:.4f} on the same folds"
        passed = passed and cv[0] > cv[1]
    verb = "beats" if passed else "does not beat"
    return Check(check="baseline", passed=passed, detail=f"{verb} the baseline: {detail}")


def decide(
    challenger: float, champion: float | None, min_improvement: float, metric: str, gates: list[Check] | tuple[Check, ...] = ()
) -> Decision:
    """The challenger wins when it passes every gate (``beats_baseline``, fairness, business) and
    there is no champion or it beats the champion by more than ``min_improvement`` (scikit-learn
    scorers are all greater-is-better). The reason is the first failed gate's, else the champion
    rule's."""
    if champion is None:
        rule = Check(check="champion", passed=True, detail=f"no champion yet; challenger {metric} = {challenger:.4f}")
    else:
        margin = challenger - champion
        if margin > min_improvement:
            detail = f"challenger {metric} {challenger:.4f} beats champion {champion:.4f} by {margin:+.4f} (> {min_improvement})"
        else:
            detail = (
                f"challenger {metric} {challenger:.4f} does not beat champion {champion:.4f} by more than {min_improvement} ({margin:+.4f})"
            )
        rule = Check(check="champion", passed=margin > min_improvement, detail=detail)
    checks = [*gates, rule]
    failed = [c for c in gates if not c["passed"]]
    if failed:
        return Decision(False, "; ".join(c["detail"] for c in failed), checks)
    return Decision(rule["passed"], rule["detail"], checks)


def comparison_rows(frame: pd.DataFrame, timestamp: str, champion_window_end: str | None) -> pd.DataFrame:
    """The out-of-time rows both models may be scored on: those after the champion's window."""
    if champion_window_end is None:
        return frame
    return frame[frame[timestamp] >= pd.Timestamp(champion_window_end)]


def compare(
    settings,
    rows: pd.DataFrame,
    challenger_model,
    champion_model,
    champion: registry.VersionInfo | None,
    baseline: dict | None = None,
    cv_means: tuple[float, float] | None = None,
) -> Comparison:
    """Scores both models, and the dummy baseline when given, on the same out-of-time rows and decides.

    Args:
        baseline: the challenger's last-fold baseline (``training.baseline_of``): a challenger
            that does not beat it is never promoted.
        cv_means: the challenger's and its baseline's CV means (the same folds).

    Raises:
        PromotionRejected: a champion exists but too few rows lie outside both training windows.
    """
    data, metric = settings.data, settings.model.metric
    usable = comparison_rows(rows, data.timestamp, champion.window_end if champion else None)
    if champion is not None and len(usable) < settings.promotion.min_rows:
        raise PromotionRejected(
            f"only {len(usable)} out-of-time rows lie after champion v{champion.version}'s window "
            f"(ends {champion.window_end}); promotion.min_rows is {settings.promotion.min_rows}"
        )
    task = settings.model.task
    mine = training.predict(challenger_model, usable, data.features, task)
    theirs = training.predict(champion_model, usable, data.features, task) if champion_model is not None else None
    challenger_score = score(challenger_model, usable, data.features, data.target, metric, mine)
    champion_score = score(champion_model, usable, data.features, data.target, metric, theirs) if theirs is not None else None
    gates = []
    baseline_score = None
    if baseline is not None:
        baseline_score = training.baseline_score(challenger_model, usable, data.features, data.target, metric, baseline)
        gates.append(beats_baseline(challenger_score, baseline_score, metric, cv_means))
    classes = list(challenger_model.classes_) if task == "classification" else None
    fair = _fairness(settings, usable, mine, theirs, classes) if settings.fairness is not None else None
    worth = _business(settings, usable, mine, theirs, classes) if settings.business is not None else None
    gates += [record.pop("check") for record in (fair, worth) if record is not None]
    decision = decide(challenger_score, champion_score, settings.promotion.min_improvement, metric, gates)
    return Comparison(
        rows=len(usable),
        rows_start=usable[data.timestamp].min().isoformat() if len(usable) else None,
        rows_end=usable[data.timestamp].max().isoformat() if len(usable) else None,
        challenger_score=challenger_score,
        champion_score=champion_score,
        champion_version=champion.version if champion else None,
        baseline_score=baseline_score,
        fairness=fair,
        business=worth,
        checks=decision.checks,
        better=decision.promote,
        reason=decision.reason,
    )


def _fairness(settings: Settings, rows: pd.DataFrame, mine, theirs, classes) -> dict:
    """Both models' fairness on the comparison rows and the gate's check (under ``check``)."""
    from include import fairness

    chosen = settings.fairness
    if chosen.group not in rows.columns:
        raise DataError(f"fairness.group {chosen.group!r} is not a column of the comparison rows (columns: {sorted(rows.columns)})")
    target, groups = rows[settings.data.target], rows[chosen.group]

    def measure(scores):
        return fairness.measure(target, scores, groups, chosen.metric, classes, chosen.threshold, chosen.min_group_rows)

    challenger = measure(mine)
    passed, detail = fairness.judge(challenger, chosen.max_gap)
    return {
        "challenger": challenger,
        "champion": measure(theirs) if theirs is not None else None,
        "max_gap": chosen.max_gap,
        "check": Check(check="fairness", passed=passed, detail=detail),
    }


def _business(settings: Settings, rows: pd.DataFrame, mine, theirs, classes) -> dict:
    """Both models' business value on the comparison rows and the promotion's check (under
    ``check``): the challenger may not be worth less than the champion by more than
    ``promotion.max_business_drop``."""
    from include import business

    chosen, task, allowed = settings.business, settings.model.task, settings.promotion.max_business_drop
    target = rows[settings.data.target].to_numpy()
    challenger = business.value(chosen, task, mine, target, classes)
    champion = business.value(chosen, task, theirs, target, classes) if theirs is not None else None
    what = f"{chosen.metric} {challenger['value']:.4f}" if challenger["value"] is not None else f"{chosen.metric} n/a"
    if champion is None or champion["value"] is None or challenger["value"] is None:
        check = Check(
            check="business", passed=True, detail=f"challenger {what} on {challenger['rows']:,} rows; no champion value to compare"
        )
    else:
        drop = champion["value"] - challenger["value"]
        passed = drop <= allowed
        verb = "within" if passed else "more than"
        detail = f"challenger {what} against champion {champion['value']:.4f}: a drop of {drop:+.4f}, {verb} promotion.max_business_drop {allowed}"
        check = Check(check="business", passed=passed, detail=detail)
    return {"challenger": challenger, "champion": champion, "max_drop": allowed, "check": check}


class PromotionResult(TypedDict):
    """What retrain's ``promote`` (or monitor's ``rollout``) did: ``promoted`` only when
    ``@champion`` moved to the challenger."""

    kind: Literal["promotion"]
    promoted: bool
    champion: int | None
    reason: str
    mlflow_url: str | None
    # the checks a challenger failed that a better score cannot make up for (``GATES``): its
    # refusal is an alert, where merely not beating the champion is not
    refused_by: NotRequired[list[str]]
    challenger: NotRequired[int]  # the version that was decided on
    rollout: NotRequired[str]  # the challenger went under staged rollout (shadow or canary) instead
