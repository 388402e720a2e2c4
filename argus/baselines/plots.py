"""PNG plots of a comparison (matplotlib, Agg): offered load vs goodput over time per policy,
relative quality over time, and level share over time."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from argus.baselines.compare import Comparison


def _pyplot():  # noqa: ANN202 - matplotlib.pyplot
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _series(summary: dict, key: str) -> tuple[np.ndarray, np.ndarray]:
    bins = summary["intervals"]
    t = np.array([b["t_s"] for b in bins])
    y = np.array([np.nan if b[key] is None else b[key] for b in bins], float)
    return t, y


def plot_goodput(comparison: Comparison, path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    first = next(iter(comparison.summaries.values()))
    bins = first["intervals"]
    width = bins[1]["t_s"] - bins[0]["t_s"] if len(bins) > 1 else comparison.spec.duration_s
    t = np.array([b["t_s"] for b in bins])
    offered = np.array([b["requests"] for b in bins]) / width
    ax.fill_between(t, offered, step="post", color="0.85", label="offered load")
    for name, summary in comparison.summaries.items():
        tt, y = _series(summary, "goodput_rps")
        ax.step(tt, y, where="post", lw=1.6 if name == "argus" else 1.0, label=name)
    ax.set(xlabel="time (s)", ylabel="requests/s", title="Offered load and goodput (within SLO)")
    ax.legend(ncol=3, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_quality(comparison: Comparison, path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for name, summary in comparison.summaries.items():
        t, y = _series(summary, "mean_relative_quality")
        ax.step(t, y, where="post", lw=1.6 if name == "argus" else 1.0, label=name)
    ax.set(xlabel="time (s)", ylabel="mean relative quality (%)",
           title="Relative quality of served requests over time")
    ax.legend(ncol=3, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def level_share_over_time(record: object, names: tuple[str, ...], width: float,
                          bins: int) -> np.ndarray:
    """(bins, levels): share of each level among requests served, by arrival time."""
    served = record.level >= 0  # type: ignore[attr-defined]
    which = np.minimum((record.arrival[served] // width).astype(int), bins - 1)  # type: ignore[attr-defined]
    counts = np.zeros((bins, len(names)))
    np.add.at(counts, (which, record.level[served]), 1)  # type: ignore[attr-defined]
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def plot_level_share(comparison: Comparison, path: Path) -> None:
    plt = _pyplot()
    names = comparison.level_names
    policies = list(comparison.records)
    cols = 2
    rows = (len(policies) + 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(10, 2.2 * rows), sharex=True, sharey=True,
                             squeeze=False)
    bins = len(next(iter(comparison.summaries.values()))["intervals"])
    width = comparison.spec.duration_s / bins
    t = np.arange(bins) * width
    colors = plt.get_cmap("tab20")(np.linspace(0, 1, len(names)))
    for ax, name in zip(axes.flat, policies, strict=False):
        share = level_share_over_time(comparison.records[name], names, width, bins)
        ax.stackplot(t, share.T, colors=colors, step="post")
        ax.set_title(name, fontsize=9)
        ax.set_ylim(0, 1)
    for ax in axes.flat[len(policies):]:
        ax.axis("off")
    fig.legend([plt.Rectangle((0, 0), 1, 1, color=c) for c in colors], names, ncol=6,
               fontsize=7, loc="lower center")
    fig.suptitle("Level share of served requests over time")
    fig.tight_layout(rect=(0, 0.07, 1, 0.97))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_plots(comparison: Comparison, out: Path) -> list[Path]:
    paths = [out / "goodput.png", out / "quality.png", out / "level_share.png"]
    for plot, path in zip((plot_goodput, plot_quality, plot_level_share), paths, strict=True):
        plot(comparison, path)
    return paths
