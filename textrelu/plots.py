"""Plots people would rather look at than read: learning curves and activation histograms."""

import matplotlib

matplotlib.use("Agg")  # files only, no screen
import matplotlib.pyplot as plt  # noqa: E402

from .io import atomic_path  # noqa: E402


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
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path
