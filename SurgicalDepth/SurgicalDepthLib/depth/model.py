"""Running depth networks: :class:`TorchDepthEstimator`, scale alignment, cards and saving.

Loading is :func:`SurgicalDepthLib.depth.loaders.load_depth_model` (one loader per model type).

Accepted models:
- a depth model folder (``model.json`` with ``task: depth`` + state dict of :class:`CompactDepthNet`
  or a TorchScript module + ``weights.sha256``); ``None`` means the bundled
  ``Resources/Models/endoscopy-depth``;
- a bare TorchScript file: input (B, 3, H, W) float RGB in [0, 1], output (B, 1, H, W) or (B, H, W)
  depth; it is treated as relative (not metric) unless ``metric=True``;
- a local Hugging Face Depth Anything folder (V1 or V2, ``config.json`` + safetensors), read with the
  optional ``transformers`` package without downloading anything (see :mod:`.depth_hf`): metric
  models give mm, relative ones depth up to an unknown scale.

Relative models are turned into millimetres with :func:`align_scale` against a reference depth
(median ratio, the SCARED protocol, or least squares); see :meth:`TorchDepthEstimator.predict_aligned`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from SurgicalAICore.device import run_with_cpu_fallback
from SurgicalAICore.errors import InputError
from SurgicalAICore.model_folder import CardSchema, write_model_folder


DEFAULT_MODEL_NAME = "endoscopy-depth"
# trained with endoscopic appearance augmentation on renders of shippable CTs only: ranks real video's depth
# better than the default (docs/BENCHMARKS_depth_real.md) and is where adaptation to one's own video starts from
VIDEO_MODEL_NAME = "endoscopy-depth-video"
DEPTH_SCHEMA = CardSchema(
    task="depth",
    required={"input_size": list, "normalisation": dict, "depth_unit": str},
    optional={"is_metric": bool, "depth_range_mm": list, "camera": dict, "alignment": str},
)
IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def default_model_path() -> Path:
    from SurgicalAICore.resources import models_dir

    return models_dir() / DEFAULT_MODEL_NAME


def video_model_path() -> Path:
    """The bundled model for real video; the default model where a checkout lacks it."""
    from SurgicalAICore.resources import models_dir

    path = models_dir() / VIDEO_MODEL_NAME
    return path if path.is_dir() else default_model_path()


def resolve_model_path(model: str | Path | None) -> Path:
    """None: the default model; the name of a bundled model (``endoscopy-depth-video``) where no such path
    exists: that model's folder; anything else: the path itself."""
    from SurgicalAICore.resources import models_dir

    if model is None:
        return default_model_path()
    path = Path(model)
    bundled = models_dir() / str(model)
    if not path.exists() and len(path.parts) == 1 and bundled.is_dir():
        return bundled
    return path


def align_scale(
    pred: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None, method: str = "median"
) -> float:
    """Scale ``s`` so that ``s * pred`` best matches ``reference`` on valid pixels.

    ``median``: ratio of medians (SCARED/KITTI protocol); ``lstsq``: least squares
    ``argmin_s sum (s p - r)^2 = sum(p r) / sum(p^2)``.
    """
    p = np.asarray(pred, np.float64)
    r = np.asarray(reference, np.float64)
    valid = np.isfinite(p) & np.isfinite(r) & (p > 0) & (r > 0)
    if mask is not None:
        valid &= np.asarray(mask, bool)
    if not valid.any():
        raise InputError("No pixel has both a predicted and a reference depth: cannot align the scale.")
    p, r = p[valid], r[valid]
    if method == "median":
        return float(np.median(r) / np.median(p))
    if method == "lstsq":
        return float(np.dot(p, r) / np.dot(p, p))
    raise InputError(f"Unknown scale alignment '{method}': use median or lstsq.")


@dataclass
class TorchDepthEstimator:
    """A loaded depth model. ``predict(rgb)`` returns depth in mm at the input resolution."""

    module: torch.nn.Module
    device: torch.device
    card: dict[str, Any]
    input_size: tuple[int, int] | None  # (H, W) the model runs at; None: any multiple of 32
    mean: np.ndarray
    std: np.ndarray
    is_metric: bool = True

    def _prepare(self, frames: Sequence[np.ndarray]) -> tuple[torch.Tensor, tuple[int, int], tuple[int, int]]:
        shapes = {np.asarray(f).shape for f in frames}
        if len(shapes) != 1:
            raise InputError("All frames of a batch must have the same size.")
        shape = shapes.pop()
        if len(shape) != 3 or shape[2] != 3:
            raise InputError(f"Depth prediction needs H x W x 3 RGB frames, got shape {shape}.")
        if shape[0] < 8 or shape[1] < 8:
            raise InputError(f"Frame {shape[1]}x{shape[0]} is too small for depth prediction.")
        arr = np.stack([np.asarray(f) for f in frames])
        if arr.dtype != np.uint8:
            raise InputError(f"Frames must be uint8 RGB, got {arr.dtype}.")
        x = torch.from_numpy(arr).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        h, w = shape[:2]
        if self.input_size is not None:
            size = tuple(self.input_size)
            if (h, w) != size:
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
            pad = (0, 0)
        else:
            ph, pw = (-h) % 32, (-w) % 32
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
            pad = (ph, pw)
        mean = torch.as_tensor(self.mean, device=self.device, dtype=x.dtype).view(1, 3, 1, 1)
        std = torch.as_tensor(self.std, device=self.device, dtype=x.dtype).view(1, 3, 1, 1)
        return (x - mean) / std, (h, w), pad

    def predict_batch(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """(N, H, W) float32 depth for N same-size uint8 RGB frames."""
        if len(frames) == 0:
            return np.zeros((0, 0, 0), np.float32)

        def run(device: torch.device) -> np.ndarray:
            if device != self.device:
                self.module.to(device)
                self.device = device
            x, (h, w), (ph, pw) = self._prepare(frames)
            with torch.inference_mode():
                y = self.module(x)
            if y.dim() == 3:
                y = y.unsqueeze(1)
            if ph or pw:
                y = y[..., : y.shape[-2] - ph, : y.shape[-1] - pw]
            if y.shape[-2:] != (h, w):
                y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)
            return y[:, 0].float().cpu().numpy()

        return run_with_cpu_fallback(run, self.device).astype(np.float32)

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W) float32 depth in mm (model units if not metric) for one uint8 RGB frame."""
        return self.predict_batch([rgb])[0]

    def predict_aligned(self, rgb: np.ndarray, reference_mm: np.ndarray, method: str = "median") -> np.ndarray:
        """Depth scaled to match ``reference_mm`` (for relative models, or to remove a metric bias)."""
        pred = self.predict(rgb)
        return pred * align_scale(pred, reference_mm, method=method)


def depth_card(
    name: str,
    net,
    input_size: tuple[int, int] = (256, 320),
    training: dict | None = None,
    metrics: dict | None = None,
    camera: dict | None = None,
    description: str = "",
) -> dict[str, Any]:
    """A model card for a :class:`CompactDepthNet`."""
    from SurgicalDepthLib.depth.network import count_parameters

    card = {
        "name": name,
        "version": "1.0",
        "task": "depth",
        "description": description
        or "Compact encoder-decoder predicting metric z-depth (mm) from one RGB endoscope frame.",
        "input_size": [int(input_size[0]), int(input_size[1])],
        "normalisation": dict(IMAGENET),
        "depth_unit": "mm",
        "is_metric": True,
        "depth_range_mm": [0.5, float(net.hyper_parameters()["max_depth_mm"])],
        "architecture": {
            "name": "CompactDepthNet",
            "hyper_parameters": net.hyper_parameters(),
            "parameters": count_parameters(net),
        },
        "license": "Apache-2.0",
    }
    if training:
        card["training"] = training
    if metrics:
        card["metrics"] = metrics
    if camera:
        card["camera"] = camera
    return card


def save_depth_model(path: str | Path, net, card: dict[str, Any], overwrite: bool = False):
    """Write a depth model folder (state dict) atomically."""
    return write_model_folder(path, card, net.state_dict(), DEPTH_SCHEMA, overwrite=overwrite)
