"""Plots people would rather look at than read: learning curves and activation histograms."""

import matplotlib

matplotlib.use("Agg")  # files only, no screen
import matplotlib.pyplot as plt  # noqa: E402

from textrelu.io import atomic_path  # noqa: E402


def plot_learning_curve(history: list[dict], path):
    """Training loss and validation metrics per epoch (fine-tuning history) to a PNG."""
    epochs = [row["epoch"] for row in history]
    valid_keys = [k for k in history[0] if k.startswith("valid_") and k != "valid_loss"]
    fig, axes = plt.subplots(1, 1 + len(valid_keys), figsize=(4 * (1 + len(valid_keys)), 3.2))
    axes = list(axes) if len(valid_keys) else [axes]
    axes[0].plot(epochs, [r["train_loss"] for r in history], marker="o", label="train")
    if "valid_loss" in history[0]:
        axes[0].plot(epochs, [r["valid_loss"] for r in history], marker="o", label="validation")
    axes[0].set(xlabel="epoch", ylabel="loss", title="loss")
    axes[0].legend()
    for ax, key in zip(axes[1:], valid_keys):
        ax.plot(epochs, [r[key] for r in history], marker="o", color="tab:orange")
        ax.set(xlabel="epoch", title=key.replace("_", " "))
    return _save(fig, path)


def outside_legend(ax):
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))


def _save(fig, path):
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path


def plot_compare_curves(curves: dict, metric: str, path):
    """Validation `metric` per fine-tuning epoch, one line per model: {model: [(epoch, value)]}."""
    fig, ax = plt.subplots(figsize=(9.5, 4))
    for name, points in curves.items():
        ax.plot(*zip(*points), marker=".", label=name)
    ax.set(xlabel="fine-tuning epoch", ylabel=f"validation {metric}", title="learning curves")
    outside_legend(ax)
    return _save(fig, path)


def plot_metric_vs_sparsity(points: dict, metric: str, path):
    """Test `metric` against the mean share of exact zeros: {model: [(zeros, value)]}."""
    fig, ax = plt.subplots(figsize=(9.5, 4))
    for name, xy in points.items():
        ax.scatter(*zip(*xy), label=name, s=18)
    ax.set(
        xlabel="exact zeros in the hidden layers (mean over layers)",
        ylabel=f"test {metric}",
        title=f"{metric} against sparsity",
    )
    outside_legend(ax)
    return _save(fig, path)


def plot_histograms(histograms: dict, path):
    """Hidden activations per model and layer: {model: [{"layer", "exact_zeros", "counts", "edges"}]}."""
    names = [n for n, h in histograms.items() if h]
    depth = max(len(histograms[n]) for n in names)
    fig, axes = plt.subplots(len(names), depth, figsize=(3.2 * depth, 2.2 * len(names)), squeeze=False)
    for i, name in enumerate(names):
        for j in range(depth):
            ax = axes[i][j]
            if j >= len(histograms[name]):
                ax.axis("off")
                continue
            h = histograms[name][j]
            if h["counts"]:
                edges = h["edges"]
                ax.stairs(h["counts"], edges, fill=True)
            ax.set_yscale("log")
            ax.set_title(f"{name}\nlayer {h['layer']}: {h['exact_zeros']:.0%} exact zeros", fontsize=7)
            ax.tick_params(labelsize=6)
    return _save(fig, path)


def plot_label_curve(curves: dict, metric: str, path, examples: str = "reviews"):
    """Test `metric` against the number of labeled `examples`: {model: [(n, mean, sd)]}."""
    fig, ax = plt.subplots(figsize=(9.5, 4))
    for name, points in curves.items():
        n, mean, sd = zip(*sorted(points))
        ax.errorbar(n, mean, yerr=sd, marker="o", capsize=3, label=name)
    ax.set_xscale("log")
    ax.set(xlabel=f"labeled training {examples}", ylabel=f"test {metric}", title="where pre-training pays")
    outside_legend(ax)
    return _save(fig, path)


def plot_error_vs_sparsity(points: list, path):
    """Image runs: test error against mean exact sparsity, one labelled point per run or per
    sweep row (its mean over seeds): [(group, label, sparsity, error)]."""
    groups = {}
    for group, label, zeros, error in points:
        groups.setdefault(group, []).append((zeros, error, label))
    # the groups' names are long (a sweep's settings): the legend goes below the plot
    fig, ax = plt.subplots(figsize=(9.5, 4.5 + 0.22 * len(groups)))
    for group, xs in groups.items():
        xs.sort()
        ax.plot([x[0] for x in xs], [x[1] for x in xs], marker="o", label=group)
        for zeros, error, label in xs:
            ax.annotate(label, (zeros, error), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_yscale("log")
    ax.set(
        xlabel="exact zeros in the hidden layers (mean over layers)",
        ylabel="test error (log scale)",
        title="test error against sparsity",
    )
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    return _save(fig, path)
