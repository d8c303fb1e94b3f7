"""The model card: why a registered version exists and why it is (or is not) the champion, in
Markdown, from facts gathered as the ``retrain`` run goes (``CardFacts``). Pure: rendering only;
``include.registry`` stores the card as the version's description and as the run's artifact.

The card grows with the run: ``train`` writes the data, the folds and the baseline; ``evaluate``
adds the comparison on out-of-time rows and the checks; ``promote`` adds the decision. Each step
re-renders the whole card from the facts, so a re-run writes the same card.
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

# MLflow keeps a version's description in a column of 5000 characters
DESCRIPTION_LIMIT = 5000
CARD_ARTIFACT = "model_card.md"
FACTS_ARTIFACT = "model_card.json"


class Decision(TypedDict):
    """Where the version stands: ``pending`` until ``promote`` ran."""

    state: Literal["pending", "promoted", "kept", "refused", "rollout", "retired"]
    reason: str
    champion_before: int | None  # @champion when the decision was taken
    refused_by: NotRequired[list[str]]


class CardFacts(TypedDict):
    name: str
    version: int
    run_id: str
    run_url: str | None
    task: str
    metric: str
    estimator: str
    params: dict
    window_start: str
    window_end: str
    rows: int
    reason: str
    trigger: str | None  # in words: what started the retrain (the drifted intervals)
    airflow_run_id: str
    data_digest: str
    config_digest: str
    code_version: str
    gate: dict | None  # the gate's result on the window: rows, checks, learned_from, warnings
    folds: list[dict]  # the CV summary (``training.CVResult.summary``)
    cv_mean: float
    baseline: dict | None  # the last fold's dummy (``training.baseline_of``)
    baseline_cv_mean: float | None
    comparison: NotRequired[dict | None]  # ``promotion.Comparison``, with fairness and business when configured
    decision: NotRequired[Decision | None]


def _num(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _headline(f: CardFacts) -> str:
    decision = f.get("decision")
    if not decision:
        if f.get("comparison"):
            verdict = "better" if f["comparison"]["better"] else "not better"
            return f"**Evaluated, not yet decided**: {verdict} ({f['comparison']['reason']})."
        return "**Trained and registered as `@challenger`**; not yet compared with the champion."
    before = f"v{decision['champion_before']}" if decision.get("champion_before") is not None else "none"
    if decision["state"] == "promoted":
        replacing = f"replacing {before}" if decision.get("champion_before") is not None else "the first champion"
        return f"**Champion.** Promoted, {replacing}: {decision['reason']}."
    if decision["state"] == "rollout":
        return f"**Under staged rollout** (`@candidate`); the champion stays {before} until the live rows decide: {decision['reason']}."
    if decision["state"] == "retired":
        return f"**Retired** after its rollout; the champion stays {before}: {decision['reason']}."
    if decision["state"] == "refused":
        which = ", ".join(decision.get("refused_by") or [])
        return f"**Refused** by the {which} check; the champion stays {before}: {decision['reason']}."
    return f"**Not promoted**; the champion stays {before}: {decision['reason']}."


def _folds_table(f: CardFacts, secondary: bool) -> list[str]:
    metric = f["metric"]
    names = list(dict.fromkeys(k for fold in f["folds"] for k in (fold.get("metrics") or {}) if k != metric)) if secondary else []
    head = ["fold", "trained up to", "validated on", "rows (train / valid)", metric, "baseline", *names]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for fold in f["folds"]:
        cells = [
            str(fold["fold"]),
            fold["train_end"][:16].replace("T", " "),
            f"{fold['valid_start'][:10]} .. {fold['valid_end'][:10]}",
            f"{fold['train_rows']:,} / {fold['valid_rows']:,}",
            _num(fold["score"]),
            _num(fold.get("baseline")),
            *(_num((fold.get("metrics") or {}).get(n)) for n in names),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("| **mean** | | | | **" + _num(f["cv_mean"]) + "** | " + _num(f.get("baseline_cv_mean")) + " |" + " |" * len(names))
    return lines


def _comparison(f: CardFacts) -> list[str]:
    c = f.get("comparison")
    if not c:
        return ["Not compared yet (the `evaluate` task writes this part)."]
    metric = f["metric"]
    if not c.get("rows"):
        return [f"No comparison: {c['reason']}."]
    out = [
        f"{c['rows']:,} out-of-time rows, {(c.get('rows_start') or '')[:16].replace('T', ' ')} to "
        f"{(c.get('rows_end') or '')[:16].replace('T', ' ')}: the last fold's validation rows"
        + (f" after champion v{c['champion_version']}'s training window" if c.get("champion_version") is not None else "")
        + ". No model below trained on them.",
        "",
        f"| model | {metric} |",
        "|---|---|",
        f"| challenger v{f['version']} (its last-fold model) | {_num(c.get('challenger_score'))} |",
    ]
    if c.get("champion_version") is not None:
        out.append(f"| champion v{c['champion_version']} | {_num(c.get('champion_score'))} |")
    baseline = f.get("baseline") or {}
    if c.get("baseline_score") is not None:
        out.append(f"| baseline ({baseline.get('strategy')}: always {_num(baseline.get('value'))}) | {_num(c['baseline_score'])} |")
    return out


def _checks(f: CardFacts) -> list[str]:
    c = f.get("comparison") or {}
    out = [f"- {'passed' if check['passed'] else '**failed**'}: {check['check']}: {check['detail']}" for check in c.get("checks", [])]
    done = {check["check"] for check in c.get("checks", [])}
    if c.get("checks"):
        out += [f"- {name}: not configured" for name in ("fairness", "business") if name not in done]
    return out or ["- not evaluated yet"]


def _fairness(f: CardFacts) -> list[str]:
    from include.fairness import table

    fair = (f.get("comparison") or {}).get("fairness")
    if not fair:
        return []
    c = f["comparison"]
    champion = f"champion v{c['champion_version']}" if fair.get("champion") else None
    lines = [
        "",
        "## Fairness",
        "",
        f"{fair['challenger']['metric']} per {fair['challenger']['group']} group on the comparison rows (max gap {fair['max_gap']}):",
        "",
    ]
    return lines + table(fair["challenger"], fair.get("champion"), f"challenger v{f['version']}", champion)


def _business(f: CardFacts) -> list[str]:
    worth = (f.get("comparison") or {}).get("business")
    if not worth:
        return []
    mine, theirs = worth["challenger"], worth.get("champion")
    lines = ["", "## Business", "", f"| model | {mine['metric']} | rows |", "|---|---|---|"]
    lines.append(f"| challenger v{f['version']} | {_num(mine['value'])} | {mine['rows']:,} |")
    if theirs:
        lines.append(f"| champion v{f['comparison']['champion_version']} | {_num(theirs['value'])} | {theirs['rows']:,} |")
    return lines


def _gate(f: CardFacts) -> str:
    gate = f.get("gate")
    if not gate:
        return "n/a"
    learned = gate.get("learned_from")
    against = (
        f"the config and the champion's learned tolerances (window {learned['start'][:10]} .. {learned['end'][:10]})"
        if learned
        else "the config's rules (no champion profile yet)"
    )
    warned = len(gate.get("warnings") or [])
    return f"passed {gate['checks']} checks on {gate['rows']:,} rows against {against}" + (f"; {warned} warning(s)" if warned else "")


def render(f: CardFacts, secondary: bool = True) -> str:
    """The card in Markdown (``secondary=False``: without the secondary metrics' columns)."""
    params = ", ".join(f"{k}={v}" for k, v in sorted(f["params"].items())) or "defaults"
    trigger = f"{f['reason']}" + (f": {f['trigger']}" if f.get("trigger") else "")
    run = f"[{f['run_id']}]({f['run_url']})" if f.get("run_url") else f"`{f['run_id']}`"
    lines = [
        f"# {f['name']} v{f['version']}",
        "",
        _headline(f),
        "",
        "| | |",
        "|---|---|",
        f"| trained on | {f['window_start'][:16].replace('T', ' ')} .. {f['window_end'][:16].replace('T', ' ')} (end excluded), {f['rows']:,} labelled rows |",
        f"| why retrained | {trigger} |",
        f"| model | {f['task']}: {f['estimator']} ({params}) |",
        f"| data digest | `{f['data_digest']}` |",
        f"| config digest | `{f['config_digest']}` |",
        f"| code version | `{f['code_version']}` |",
        f"| data-quality gate | {_gate(f)} |",
        f"| training run | {run} (Airflow run `{f['airflow_run_id']}`) |",
        "",
        f"## Time-based cross-validation ({len(f['folds'])} folds)",
        "",
        *_folds_table(f, secondary),
        "",
        "## Comparison on the same out-of-time rows",
        "",
        *_comparison(f),
        "",
        "## Checks",
        "",
        *_checks(f),
    ]
    lines += _fairness(f) + _business(f)
    decision = f.get("decision")
    lines += ["", "## Decision", "", decision["reason"] if decision else "pending (the `promote` task writes this part)"]
    lines += ["", "Charts: `cv/folds.png`, `cv/calibration.png` on the training run; this card's facts: `model_card.json`."]
    return "\n".join(lines) + "\n"


def description(f: CardFacts, limit: int = DESCRIPTION_LIMIT) -> str:
    """The card as the version's description: whole when it fits MLflow's limit, else without
    the secondary metrics, else cut, pointing at the whole card (the run's ``model_card.md``)."""
    for text in (render(f), render(f, secondary=False)):
        if len(text) <= limit:
            return text
    note = f"\n\n(cut to fit the description; the whole card is `{CARD_ARTIFACT}` on the training run)\n"
    return render(f, secondary=False)[: limit - len(note)] + note
