"""Training curves (loss, validation Dice per class) as a PNG beside the checkpoint."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence


from SurgicalAICore.atomic import write_atomic


def write_curves(history: Sequence[dict], path: Path, class_names: Sequence[str]) -> None:
    """Training loss and validation Dice per class against epoch, as a PNG (atomic)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6), dpi=100)
    ax1, ax2 = fig.subplots(1, 2)
    epochs = [h["epoch"] for h in history]
    ax1.plot(epochs, [h["train_loss"] for h in history], "-o", ms=3, color="tab:blue")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("training loss (Dice + CE)")
    ax1.grid(alpha=0.3)
    val = [h for h in history if h.get("val_dice")]
    if val:
        for name in class_names:
            ax2.plot([h["epoch"] for h in val], [h["val_dice"].get(name, float("nan")) for h in val], "-", label=name)
        ax2.plot([h["epoch"] for h in val], [h["val_mean_dice"] for h in val], "k--", lw=2, label="mean")
        ax2.legend(fontsize=7, loc="lower right", ncol=2)
    else:
        ax2.text(0.5, 0.5, "no validation cases", ha="center", va="center", transform=ax2.transAxes)
    ax2.set_ylim(0, 1)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("validation Dice")
    ax2.grid(alpha=0.3)
    from matplotlib.ticker import MaxNLocator

    for ax in (ax1, ax2):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()

    def save(p: Path) -> None:
        with open(p, "wb") as f:
            fig.savefig(f, format="png")
    write_atomic(path, save)
