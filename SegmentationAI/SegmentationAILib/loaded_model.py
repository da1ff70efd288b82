"""A loaded segmentation model, whatever its format: card, network on its device, folder."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch



@dataclass
class SegmentationModel:
    """A loaded segmentation model: its card, the network in eval mode on ``device``, and its folder."""

    card: dict[str, Any]
    network: torch.nn.Module
    device: torch.device
    path: Path | None = None

    @property
    def labels(self) -> list[dict[str, Any]]:
        return sorted(self.card["labels"], key=lambda e: e["value"])

    @property
    def num_classes(self) -> int:
        return len(self.card["labels"]) + 1

    @property
    def name(self) -> str:
        return str(self.card.get("name", "model"))

    def to(self, device: str | torch.device) -> SegmentationModel:
        """The same model moved to another device (the network is shared, not copied)."""
        device = torch.device(device)
        self.network.to(device)
        return SegmentationModel(self.card, self.network, device, self.path)
