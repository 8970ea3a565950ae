"""The figures of the reproduction that are drawn from its results: Fig 4 (accuracy against
T over several trained networks) and Fig 5 (runtime against T and batch size)."""

from __future__ import annotations

from pathlib import Path

from lava_retrieval.common.figures import pyplot, save_figure
from lava_retrieval.evaluation import paper
from lava_retrieval.reproduce.context import FIG4_METRICS


def plot_fig4(summary: dict, networks: int, out: Path) -> Path:
    """The paper's Fig 4: each metric against T (log axis), mean +- standard deviation over the
    networks as error bars, the ANNs' mean as a dashed line (their spread shaded)."""
    plt = pyplot()

    steps = sorted(int(m[4:-1]) for m in summary if m.startswith("SNN("))
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.2))
    for ax, (key, name) in zip(axes, FIG4_METRICS, strict=True):
        means = [summary[f"SNN({t})"][key]["mean"] for t in steps]
        stds = [summary[f"SNN({t})"][key]["std"] for t in steps]
        ax.errorbar(steps, means, yerr=stds, marker="o", capsize=4, label="SNN (mean ± std)")
        ann = summary["ANN"][key]
        ax.axhline(ann["mean"], color="tab:red", linestyle="--", linewidth=1, label="ANN (mean)")
        ax.axhspan(
            ann["mean"] - ann["std"],
            ann["mean"] + ann["std"],
            color="tab:red",
            alpha=0.12,
            linewidth=0,
        )
        ax.set_xscale("log", base=2)
        ax.set_xticks(steps, [str(t) for t in steps])
        ax.set_xlabel("time steps T")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("percent")
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle(
        f"32-64-10, Algorithm 1, Lava timing, membrane readout: {networks} networks "
        "(seeds 0-4), mean ± standard deviation (paper: Fig 4)",
        fontsize=10,
    )
    fig.tight_layout()
    save_figure(fig, out, dpi=100, format="png")
    return out


def plot_fig5(rows: list[dict], out: Path) -> Path:
    """Fig 5: per-example runtime against T for the simulator (batch 1 and large) and the Lava
    graph (batch 1), the ANN as horizontal lines, the paper's two Loihi points."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(8, 5))
    series: dict[str, list] = {}
    for row in rows:
        if row["model"] == "ann":
            ax.axhline(
                row["ms"],
                linewidth=1,
                color="tab:gray" if row["device"] == "cpu" else "tab:green",
                dashes=(1, 2) if row["batch_size"] == 1 else (4, 2),
                label=f"ANN, torch {row['device']}, batch {row['batch_size']}",
            )
            continue
        where = "CPU" if row["device"] == "cpu" else row["device"]
        name = f"{'Lava process graph' if row['model'] == 'lava' else 'fast simulator'} ({where})"
        series.setdefault(f"SNN, {name}, batch {row['batch_size']}", []).append(
            (row["time_steps"], row["ms"])
        )
    for label, points in series.items():
        points.sort()
        ax.plot(*zip(*points, strict=True), marker="o", label=label)
    loihi = [paper.loihi_row(16), paper.loihi_row(128)]
    ax.plot(
        [16, 128],
        [r["ms"] for r in loihi],
        marker="s",
        color="black",
        linestyle="--",
        label="SNN, Loihi, batch 1 (paper, Table 3)",
    )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    steps = sorted({16, 128} | {r["time_steps"] for r in rows if r["time_steps"]})
    ax.set_xticks(steps, [str(t) for t in steps])
    ax.set_xlabel("time steps T")
    ax.set_ylabel("runtime per example (ms)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title("Runtime per example against T (paper: Fig 5)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, out, dpi=100, format="png")
    return out
