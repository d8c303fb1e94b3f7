"""Pictures a user would rather look at than read: fold metrics, drift over time (PNG bytes)."""

from __future__ import annotations

import io

import pandas as pd


def _figure(width: float = 9, height: float = 4):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=100)
    return plt, fig, ax


def _figure_with_strip(panel: bool = False):
    """A main plot over a strip; ``panel``: and a third plot between them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ratios = [4, 2, 1.3] if panel else [4, 1.3]
    fig, axes = plt.subplots(len(ratios), 1, figsize=(9, 5.2 + 1.8 * panel), dpi=100, sharex=True, gridspec_kw={"height_ratios": ratios})
    return plt, fig, axes


_STRIP = (("features", lambda v: v["drift"]), ("prediction", lambda v: (v.get("prediction_drift") or {}).get("drifted")))
_STRIP += (("target", lambda v: (v.get("target_drift") or {}).get("drifted")),)


def _drift_strip(ax, ends: list, verdicts: list[dict]) -> None:
    """One row per kind of drift: red drifted, blue not, an open grey circle where it was not judged
    (no labels yet, or a champion without out-of-time scores)."""
    for row, (_, drifted) in enumerate(_STRIP):
        flags = [drifted(v) for v in verdicts]
        for colour, value in (("#d62728", True), ("#1f77b4", False)):
            xs = [e for e, f in zip(ends, flags, strict=True) if f is value]
            ax.scatter(xs, [row] * len(xs), color=colour, marker="s", s=40)
        xs = [e for e, f in zip(ends, flags, strict=True) if f is None]
        ax.scatter(xs, [row] * len(xs), facecolors="none", edgecolors="#999999", marker="o", s=30)
    ax.set_yticks(range(len(_STRIP)), [name for name, _ in _STRIP], fontsize=8)
    ax.set_ylim(-0.6, len(_STRIP) - 0.4)
    ax.set_ylabel("drifted", fontsize=8)
    ax.grid(axis="x", color="#eeeeee")


def _png(plt, fig) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def fold_chart(folds: list[dict], metric: str, title: str) -> bytes:
    """Per-fold validation score of a time-based CV, each bar labelled with its validation span,
    and the dummy baseline's score on the same fold (a grey tick) where it is known."""
    plt, fig, ax = _figure()
    labels = [f"fold {f['fold']}\n{f['valid_start'][:10]}\n..{f['valid_end'][:10]}" for f in folds]
    scores = [f["score"] for f in folds]
    ax.bar(labels, scores, color="#1f77b4")
    mean = sum(scores) / len(scores)
    ax.axhline(mean, color="black", linestyle="--", linewidth=1, label=f"mean {mean:.4f}")
    for i, s in enumerate(scores):
        ax.annotate(f"{s:.3f}", (i, s), ha="center", va="bottom", fontsize=8)
    baselines = [f.get("baseline") for f in folds]
    if all(b is not None for b in baselines):
        ax.scatter(range(len(folds)), baselines, color="#7f7f7f", marker="_", s=900, linewidths=3, zorder=3, label="baseline (dummy)")
        scores = scores + baselines  # the axis shows both
    low, high = min(scores), max(scores)
    pad = 0.1 * (high - low) + 0.02 * max(abs(low), abs(high), 1e-9)
    bottom = low - 2 * pad
    # scorers of errors are negative (neg_root_mean_squared_error): only clamp scores that are >= 0
    ax.set_ylim(max(0.0, bottom) if low >= 0 else bottom, high + pad)
    ax.set_ylabel(f"validation {metric}")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    return _png(plt, fig)


def calibration_chart(target, predictions, title: str, bins: int = 10) -> bytes | None:
    """A reliability diagram of out-of-time scores: per bin of predicted probability (quantile
    bins), the share of positives, against the diagonal of a perfectly calibrated model; below it,
    how many rows each bin holds. None when no row has a score."""
    import numpy as np
    from sklearn.calibration import calibration_curve

    y, p = np.asarray(target, dtype="float64"), np.asarray(predictions, dtype="float64")
    keep = ~(np.isnan(y) | np.isnan(p))
    y, p = y[keep], p[keep]
    if len(y) == 0 or len(np.unique(y)) < 2:
        return None
    observed, predicted = calibration_curve(y, p, n_bins=bins, strategy="quantile")
    plt, fig, (ax, hist) = _figure_with_strip()
    ax.plot([0, 1], [0, 1], color="#999999", linestyle="--", linewidth=1, label="perfectly calibrated")
    ax.plot(predicted, observed, color="#1f77b4", marker="o", label=f"out-of-time scores ({len(y)} rows)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("observed share of positives")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    hist.hist(p, bins=20, range=(0, 1), color="#1f77b4", alpha=0.7)
    hist.set_xlabel("predicted probability")
    hist.set_ylabel("rows", fontsize=8)
    return _png(plt, fig)


def _business_panel(ax, worth: list) -> None:
    """The business metric per interval, with the champion's own value on its out-of-time rows
    (dashed) and a red mark where it fell by more than ``business.max_drop``."""
    ends, records = [e for e, _ in worth], [w for _, w in worth]
    ax.plot(ends, [w["value"] for w in records], color="#2ca02c", marker="o", label=records[-1]["metric"])
    refs = [(e, w["reference"]) for e, w in worth if w.get("reference") is not None]
    if refs:
        ax.plot(
            [e for e, _ in refs], [r for _, r in refs], color="#2ca02c", linestyle="--", linewidth=1, label="champion's own (out-of-time)"
        )
    fell = [(e, w["value"]) for e, w in worth if w.get("fell")]
    if fell:
        ax.scatter([e for e, _ in fell], [v for _, v in fell], color="#d62728", zorder=3, s=60, label="fell past business.max_drop")
    ax.set_ylabel("business", fontsize=8)
    ax.legend(loc="upper left", fontsize=7)
    ax.grid(axis="y", color="#eeeeee")


def drift_chart(verdicts: list[dict], threshold: float, metric: str) -> bytes | None:
    """A PNG of drift share and the live metric per interval, with the champion version, and the
    shadow's live metric where the previous champion scored too; below it, a strip of which
    intervals drifted in their features, in the champion's scores (prediction drift) and in their
    labels (target drift)."""
    if not verdicts:
        return None
    worth = [(pd.Timestamp(v["end"]), v["business"]) for v in verdicts if (v.get("business") or {}).get("value") is not None]
    plt, fig, axes = _figure_with_strip(panel=bool(worth))
    ax, strip = axes[0], axes[-1]
    if worth:
        _business_panel(axes[1], worth)
    ends = [pd.Timestamp(v["end"]) for v in verdicts]
    ax.bar(
        ends,
        [v["drift_share"] for v in verdicts],
        width=3,
        color=["#d62728" if v["drift"] else "#1f77b4" for v in verdicts],
        alpha=0.7,
        label="drift share",
    )
    ax.axhline(threshold, color="#d62728", linestyle="--", linewidth=1, label=f"drift threshold {threshold}")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share of drifted features")
    ax2 = ax.twinx()
    live = [(e, v["live_metric"]) for e, v in zip(ends, verdicts, strict=True) if v.get("live_metric") is not None]
    if live:
        ax2.plot([e for e, _ in live], [m for _, m in live], color="black", marker="o", label=f"live {metric}")
        ax2.set_ylabel(f"live {metric}")
    shadow = [(e, v["shadow_metric"]) for e, v in zip(ends, verdicts, strict=True) if v.get("shadow_metric") is not None]
    if shadow:
        ax2.plot(
            [e for e, _ in shadow],
            [m for _, m in shadow],
            color="grey",
            marker="x",
            linestyle=":",
            label=f"shadow (previous champion) {metric}",
        )
    staged = [
        (e, v["rollout"]) for e, v in zip(ends, verdicts, strict=True) if (v.get("rollout") or {}).get("candidate_metric") is not None
    ]
    if staged:
        how = {f"v{r['version']} {r['strategy']}" + (f" {r['share']:.0%}" if r["strategy"] == "canary" else "") for _, r in staged}
        ax2.plot(
            [e for e, _ in staged],
            [r["candidate_metric"] for _, r in staged],
            color="#9467bd",
            marker="D",
            linestyle="none",
            label=f"candidate under rollout ({', '.join(sorted(how))}) {metric}",
        )
    for e, v in zip(ends, verdicts, strict=True):
        ax.annotate(f"v{v['model_version']}", (e, 0.02), ha="center", fontsize=8)
    ax.set_title("driftloop: drift and live metric per monitored interval (label: champion version)")
    _drift_strip(strip, ends, verdicts)
    fig.autofmt_xdate()
    lines, labels = ax.get_legend_handles_labels()
    lines2, labels2 = ax2.get_legend_handles_labels()
    ax.legend(lines + lines2, labels + labels2, loc="upper left", fontsize=8)
    return _png(plt, fig)


_POLICY_COLOURS = ("#7f7f7f", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2")


def policies_chart(result: dict) -> bytes:
    """The backtest's picture (``include.backtest``): the primary metric per interval, one line per
    policy, each retrain marked where it took over (filled: promoted, hollow: kept the champion),
    the intervals the reference policy's monitor found drifted shaded; below, each policy's drift
    share (and its business metric when the config has one)."""
    names = list(result["policies"])
    business = result.get("business_metric")
    plt, fig, axes = _figure_with_strip(panel=bool(business))
    ax, shares = axes[0], axes[-1]
    starts = [pd.Timestamp(i["start"]) for i in result["intervals"]]
    ends = [pd.Timestamp(i["end"]) for i in result["intervals"]]
    mids = [s + (e - s) / 2 for s, e in zip(starts, ends, strict=True)]
    reference = result["policies"][result["onsets_from"]]["intervals"]
    for n, interval in enumerate(reference):
        if interval["drift"]:
            for axis in axes:
                axis.axvspan(starts[n], ends[n], color="#d62728", alpha=0.08, linewidth=0)
    for n, name in enumerate(names):
        record, colour = result["policies"][name], _POLICY_COLOURS[n % len(_POLICY_COLOURS)]
        values = [record["metric"].get(i["start"]) for i in result["intervals"]]
        ax.plot(mids, [float("nan") if v is None else v for v in values], color=colour, marker="o", markersize=4, label=name)
        retrained = [r for r in record["retrain_runs"] if r["reason"] != "initial"]
        for r in retrained:
            at = pd.Timestamp(r["end"])
            ax.axvline(at, color=colour, linestyle=":", linewidth=1, alpha=0.6)
            ax.scatter([at], [ax.get_ylim()[0]], marker="^", s=60, zorder=3, color=colour if r["promoted"] else "white", edgecolors=colour)
        drift = [record["drift_share"].get(i["start"]) for i in result["intervals"]]
        shares.plot(mids, [float("nan") if v is None else v for v in drift], color=colour, marker=".", linewidth=1)
        if business:
            worth = [record["business"].get(i["start"]) for i in result["intervals"]]
            axes[1].plot(mids, [float("nan") if v is None else v for v in worth], color=colour, marker=".", linewidth=1)
    low = ax.get_ylim()[0]
    for coll in ax.collections:  # retrain marks on the floor of the final axis
        offsets = coll.get_offsets()
        offsets[:, 1] = low
        coll.set_offsets(offsets)
    ax.set_ylabel(f"live {result['metric']}")
    ax.set_title(f"driftloop backtest of {result['name']}: live {result['metric']} per interval (triangles: retrains; shaded: drift)")
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(axis="y", color="#eeeeee")
    shares.axhline(result["drift_share"], color="#d62728", linestyle="--", linewidth=1)
    shares.set_ylim(0, 1.05)
    shares.set_ylabel("drift share", fontsize=8)
    if business:
        axes[1].set_ylabel(business, fontsize=8)
        axes[1].grid(axis="y", color="#eeeeee")
    fig.autofmt_xdate()
    return _png(plt, fig)
