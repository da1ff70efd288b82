"""What a training run is asked to do (settings, stored with its checkpoint) and what it returns."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from SegmentationAILib.training.transforms import AugmentationSettings


@dataclass
class TrainingSettings:
    """Everything that defines a run. ``None`` fields are derived from the data (documented per field)."""

    modality: str = "CT"                      # "CT" or "MR"
    channel_names: Optional[List[str]] = None  # default: ["CT"] or ["MR1", ...]
    spacing: Optional[List[float]] = None      # mm along i, j, k; default: median spacing of the cases
    patch_size: List[int] = field(default_factory=lambda: [64, 64, 64])  # voxels along i, j, k
    unet_channels: List[int] = field(default_factory=lambda: [16, 32, 64, 128])
    unet_strides: List[int] = field(default_factory=lambda: [2, 2, 2])
    num_res_units: int = 1
    norm: str = "instance"
    dropout: float = 0.0
    epochs: int = 50
    steps_per_epoch: int = 50
    batch_size: int = 2                        # cases per step; each gives augmentation.samples_per_case patches
    learning_rate: float = 1e-3
    weight_decay: float = 1e-5
    schedule: str = "poly"                     # "poly" (1 - t)^0.9, "cosine" or "constant"
    warmup_steps: int = 0
    val_fraction: float = 0.2                  # used when no validation cases are given and folds == 0
    folds: int = 0                             # k-fold cross-validation when >= 2
    fold: int = 0
    val_overlap: float = 0.25
    seed: int = 0
    device: str = "auto"
    amp: bool = True                           # mixed precision, CUDA only
    threads: Optional[int] = None              # torch CPU threads
    augmentation: AugmentationSettings = field(default_factory=AugmentationSettings)
    # written into the card's post-processing: class names (or ["all"]) kept to their largest connected
    # part at inference, for structures that are one piece (the spinal cord, an organ) but come out in islands
    largest_component: Optional[List[str]] = None
    name: Optional[str] = None
    description: str = ""
    command: str = ""

    def validate(self) -> "TrainingSettings":
        """Refuse settings that cannot train (one line naming the option), before any folder is made.

        Called by the CLI and at the start of the training loop, so the panel is covered too."""
        from SurgicalAICore.errors import InputError
        from SurgicalAICore.validation import check_number, check_positive

        check_positive(self.learning_rate, "The learning rate (--lr)", high=10)
        check_number(self.weight_decay, "The weight decay (--weight-decay)", low=0, high=10)
        check_number(self.dropout, "The dropout (--dropout)", low=0, high=0.99)
        for value, what in ((self.epochs, "epochs (--epochs)"),
                            (self.steps_per_epoch, "steps per epoch (--steps-per-epoch)"),
                            (self.batch_size, "batch size (--batch-size)"),
                            (self.augmentation.samples_per_case, "patches per case (--patches-per-case)")):
            check_number(value, f"The number of {what}", low=1, high=10**6, integer=True)
        check_number(self.val_fraction, "The validation fraction (--val-fraction)", low=0, high=0.9)
        check_number(self.warmup_steps, "The warm-up steps", low=0, integer=True)
        check_number(self.val_overlap, "The validation overlap", low=0, high=0.9)
        if self.threads is not None:
            check_number(self.threads, "The thread count (--threads)", low=1, high=1024, integer=True)
        if self.spacing is not None:
            if len(self.spacing) != 3:
                raise InputError(f"The spacing needs three values (i j k), got {self.spacing}.")
            for value in self.spacing:
                check_positive(value, "Each spacing value (--spacing, mm)", high=100)
        if len(self.patch_size) != 3 or any(int(p) < 16 or int(p) > 1024 for p in self.patch_size):
            raise InputError(f"The patch size needs three values from 16 to 1024 voxels, got {self.patch_size}.")
        if self.folds and not 0 <= self.fold < self.folds:
            raise InputError(f"--fold must be in 0..{self.folds - 1} with {self.folds} folds, got {self.fold}.")
        return self

    def resume_notice(self, stored: "TrainingSettings") -> str | None:
        """What a ``--resume`` with these settings will not do, because the run's stored ones win
        (``epochs`` may only grow); None when nothing given differs."""
        ignored = []
        mine, theirs = self.to_dict(), stored.to_dict()
        for key in sorted(mine):
            if key in ("command", "name", "description", "device", "threads"):
                continue
            if key == "epochs" and self.epochs >= stored.epochs:
                continue
            if mine[key] != theirs.get(key):
                ignored.append(f"{key} {mine[key]} (the run keeps {theirs.get(key)})")
        return ("resuming keeps the run's stored settings; ignored: " + "; ".join(ignored)) if ignored else None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["augmentation"] = self.augmentation.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainingSettings":
        d = dict(d)
        aug = AugmentationSettings(**d.pop("augmentation", {}))
        known = {f for f in cls.__dataclass_fields__}
        return cls(augmentation=aug, **{k: v for k, v in d.items() if k in known})


@dataclass
class TrainingResult:
    model_path: Optional[Path]
    work_dir: Path
    history: List[dict]
    best_epoch: int
    best_val_dice: Optional[float]
    card: Dict[str, Any]
    network: Optional[torch.nn.Module] = None  # the trained network (this rank's copy, best weights when written)
