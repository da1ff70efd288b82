"""Hugging Face Depth Anything folders (V1 or V2) as :class:`TorchDepthEstimator` s.

A folder holds ``config.json`` (``"model_type": "depth_anything"``), ``model.safetensors`` or
``pytorch_model.bin``, and optionally ``preprocessor_config.json``. It is read with ``transformers``
from the local path only: nothing is ever downloaded.

Metric models (``depth_estimation_type: "metric"``, Depth Anything V2 Metric) predict metres and are
returned in mm. Relative models predict inverse depth up to an unknown scale and shift; they are
returned as ``1 / disparity``, depth up to an unknown scale, to be aligned with
:func:`~SurgicalDepthLib.depth.model.align_scale` against a reference depth (median ratio per frame,
the SCARED protocol, or least squares) or registered with the scale left free.

The folder carries no hash of its own: the SHA-256 of every file read (configs, weights, shards) is
recorded on first use and verified after (:mod:`SurgicalAICore.checksums`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from SurgicalAICore.checksums import verify_or_record
from SurgicalAICore.model_folder import read_json_object
from SurgicalAICore.errors import ModelError

from SurgicalDepthLib.depth.model import IMAGENET, TorchDepthEstimator

HF_CONFIG = "config.json"
HF_PREPROCESSOR = "preprocessor_config.json"
HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
DEPTH_ANYTHING = "depth_anything"
DEFAULT_SIZE = 518
# a relative model's disparity is floored at this fraction of the frame's largest disparity:
# background pixels near zero disparity would otherwise become (nearly) infinite depth
DISPARITY_FLOOR = 1e-3
ALIGNMENT_NOTE = ("Relative model: depth is known only up to an unknown scale. Align it with align_scale "
                  "(median ratio per frame, the SCARED protocol, or least squares) against a reference "
                  "depth, or register with the scale enabled.")

PathLike = str | Path


def _read_json(path: Path) -> dict[str, Any]:
    return read_json_object(path)


def _has_hf_weights(folder: Path) -> bool:
    return any((folder / name).is_file() for name in HF_WEIGHTS)


def is_hf_depth_folder(path: PathLike) -> bool:
    """True for a folder whose ``config.json`` names a Depth Anything model.

    A folder with Hugging Face weights, no ``model.json`` and an unreadable ``config.json`` counts too,
    so that loading it reports the broken ``config.json`` instead of asking for a ``model.json``.
    """
    folder = Path(path)
    if not (folder / HF_CONFIG).is_file():
        return False
    try:
        config = _read_json(folder / HF_CONFIG)
    except ModelError:
        return _has_hf_weights(folder) and not (folder / "model.json").is_file()
    return config.get("model_type") == DEPTH_ANYTHING


def _multiple_of(value: Any, multiple: int) -> int:
    return max(multiple, round(float(value) / multiple) * multiple)


def _patch_size(config: dict[str, Any]) -> int:
    patch = config.get("patch_size") or 14
    patch = patch[0] if isinstance(patch, (list, tuple)) and patch else patch
    if not isinstance(patch, int) or patch <= 0:
        raise ModelError(f"{HF_CONFIG}: patch_size {patch!r} is not a positive integer.")
    return patch


def _input_size(pre: dict[str, Any], multiple: int) -> tuple[int, int]:
    """(H, W) the model runs at: the preprocessor's size, on the backbone's patch grid.

    The frame size is unknown at load time, so the preprocessor's target size is used as is rather than
    fitted to each frame's aspect ratio.
    """
    size = pre.get("size", DEFAULT_SIZE)
    if isinstance(size, dict):
        if "height" in size and "width" in size:
            h, w = size["height"], size["width"]
        else:
            h = w = size.get("shortest_edge", DEFAULT_SIZE)
    elif isinstance(size, (list, tuple)) and len(size) == 2:
        h, w = size
    else:
        h = w = size
    try:
        return _multiple_of(h, multiple), _multiple_of(w, multiple)
    except (TypeError, ValueError):
        raise ModelError(f"{HF_PREPROCESSOR}: 'size' {size!r} is not a height and width.") from None


def _normalisation(pre: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    if pre.get("do_normalize", True) is False:
        return np.zeros(3, np.float32), np.ones(3, np.float32)
    try:
        mean = np.asarray(pre.get("image_mean", IMAGENET["mean"]), np.float32).reshape(3)
        std = np.asarray(pre.get("image_std", IMAGENET["std"]), np.float32).reshape(3)
    except (TypeError, ValueError):
        raise ModelError(f"{HF_PREPROCESSOR}: image_mean and image_std need 3 values each.") from None
    return mean, std


def disparity_to_depth(disparity: torch.Tensor) -> torch.Tensor:
    """``1 / disparity`` per image, with the disparity floored relative to the image's maximum."""
    peak = disparity.amax(dim=(-2, -1), keepdim=True)
    # the absolute floor keeps an all-zero disparity map finite
    floor = (peak * DISPARITY_FLOOR).clamp_min(1e-8)
    return 1.0 / torch.maximum(disparity, floor)


class HFDepthModule(torch.nn.Module):
    """(B, 3, H, W) normalised RGB -> (B, 1, H, W) depth: mm for metric models, relative otherwise."""

    def __init__(self, model: torch.nn.Module, metric: bool):
        super().__init__()
        self.model = model
        self.metric = metric

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values=x).predicted_depth
        out = out.unsqueeze(1) if out.dim() == 3 else out
        if out.shape[-2:] != x.shape[-2:]:
            out = F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)
        if self.metric:
            return out * 1000.0  # metres -> mm
        return disparity_to_depth(out)


def _import_auto_model():
    # offline before the first import: huggingface_hub reads the switch when it is imported
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from transformers import AutoModelForDepthEstimation
    except ImportError:
        raise ModelError("Hugging Face depth models need the transformers package: "
                         "pip install transformers (or the extension's 'hf' extra).") from None
    return AutoModelForDepthEstimation


def model_files(folder: Path) -> list[Path]:
    """The files ``from_pretrained`` may read: configs, weights, and the shards an index names."""
    files = [folder / name for name in (HF_CONFIG, HF_PREPROCESSOR, *HF_WEIGHTS) if (folder / name).is_file()]
    for index in [f for f in files if f.name.endswith(".index.json")]:
        weight_map = read_json_object(index).get("weight_map")
        if not isinstance(weight_map, dict):
            raise ModelError(f"{index}: no 'weight_map' object naming the weight shards.")
        for name in sorted({str(v) for v in weight_map.values()}):
            shard = (folder / name).resolve()
            if not shard.is_relative_to(folder.resolve()):
                raise ModelError(f"{index}: the shard '{name}' lies outside the model folder.")
            if shard.is_file():
                files.append(shard)
    return files


def _load_hf_model(folder: Path) -> torch.nn.Module:
    auto = _import_auto_model()
    try:
        # float32: fp16 checkpoints would otherwise load as fp16, which CPUs run slowly or not at all
        model = auto.from_pretrained(str(folder), local_files_only=True, dtype=torch.float32)
    except Exception as error:  # transformers raises many types for broken folders
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ModelError(f"Cannot load the Hugging Face depth model {folder}: {first}") from None
    return model.eval()


def _card(folder: Path, config: dict[str, Any], metric: bool, size: tuple[int, int],
          mean: np.ndarray, std: np.ndarray) -> dict[str, Any]:
    card = {
        "name": folder.name, "task": "depth", "weights_format": "huggingface",
        "source": "Hugging Face Depth Anything folder",
        "model_type": config.get("model_type"),
        "depth_estimation_type": "metric" if metric else "relative",
        "input_size": list(size),
        # rounded: the float32 arrays would print as 0.4000000059604645
        "normalisation": {"mean": [round(float(v), 6) for v in mean], "std": [round(float(v), 6) for v in std]},
        "depth_unit": "mm" if metric else "relative", "is_metric": metric,
    }
    if metric:
        card["depth_range_mm"] = [0.0, float(config.get("max_depth") or 1) * 1000.0]
    else:
        card["alignment"] = ALIGNMENT_NOTE
    return card


def load_hf_depth_folder(path: PathLike, device: torch.device) -> TorchDepthEstimator:
    """A :class:`TorchDepthEstimator` for a local Hugging Face Depth Anything folder."""
    folder = Path(path)
    config = _read_json(folder / HF_CONFIG)
    if config.get("model_type") != DEPTH_ANYTHING:
        raise ModelError(f"{folder / HF_CONFIG}: model_type is {config.get('model_type')!r}, "
                         f"not '{DEPTH_ANYTHING}'.")
    if not _has_hf_weights(folder):
        raise ModelError(f"Hugging Face depth model {folder} has no model.safetensors or pytorch_model.bin.")
    verify_or_record(folder, model_files(folder))
    pre_path = folder / HF_PREPROCESSOR
    pre = _read_json(pre_path) if pre_path.is_file() else {}
    metric = config.get("depth_estimation_type", "relative") == "metric"
    size = _input_size(pre, _patch_size(config))
    mean, std = _normalisation(pre)
    module = HFDepthModule(_load_hf_model(folder), metric).eval().to(device)
    card = _card(folder, config, metric, size, mean, std)
    return TorchDepthEstimator(module, device, card, size, mean, std, metric)
