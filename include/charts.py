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


def _png(plt, fig) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def fold_chart(folds: list[dict], metric: str, title: str) -> bytes:
    """Per-fold validation score of a time-based CV, each bar labelled with its validation span."""
    plt, fig, ax = _figure()
    labels = [f"fold {f['fold']}\n{f['valid_start'][:10]}\n..{f['valid_end'][:10]}" for f in folds]
    scores = [f["score"] for f in folds]
    ax.bar(labels, scores, color="#1f77b4")
    mean = sum(scores) / len(scores)
    ax.axhline(mean, color="black", linestyle="--", linewidth=1, label=f"mean {mean:.4f}")
    for i, s in enumerate(scores):
        ax.annotate(f"{s:.3f}", (i, s), ha="center", va="bottom", fontsize=8)
    low, high = min(scores), max(scores)
    pad = 0.1 * (high - low) + 0.02 * max(abs(low), abs(high), 1e-9)
    bottom = low - 2 * pad
    # scorers of errors are negative (neg_root_mean_squared_error): only clamp scores that are >= 0
    ax.set_ylim(max(0.0, bottom) if low >= 0 else bottom, high + pad)
    ax.set_ylabel(f"validation {metric}")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    return _png(plt, fig)


def drift_chart(verdicts: list[dict], threshold: float, metric: str) -> bytes | None:
    """A PNG of drift share and the live metric per interval, with the champion version, and the
    shadow's live metric where the previous champion scored too."""
    if not verdicts:
        return None
    plt, fig, ax = _figure()
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
    for e, v in zip(ends, verdicts, strict=True):
        ax.annotate(f"v{v['model_version']}", (e, 0.02), ha="center", fontsize=8)
    ax.set_title("driftloop: drift and live metric per monitored interval (label: champion version)")
    fig.autofmt_xdate()
    lines, labels = ax.get_legend_handles_labels()
    lines2, labels2 = ax2.get_legend_handles_labels()
    ax.legend(lines + lines2, labels + labels2, loc="upper left", fontsize=8)
    return _png(plt, fig)
