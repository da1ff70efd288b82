"""What every depth model is to the rest of the extension: ``predict(rgb) -> depth in mm``.

Loaded models (:class:`~SurgicalDepthLib.depth.model.TorchDepthEstimator`), user objects and test doubles
all satisfy this one Protocol; the pipeline, the live processor and the sessions accept any of them.
"""
from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class DepthEstimator(Protocol):
    card: dict[str, Any]

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W) float depth in mm (0: no depth) for an (H, W, 3) uint8 RGB frame."""
        ...
