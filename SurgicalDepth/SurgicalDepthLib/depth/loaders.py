"""Loading depth models: one loader per model type, chosen from a table.

A loader says whether it ``can_load`` a path and ``load``s it onto a device. The table is tried in order;
a new model type is a new loader in :data:`LOADERS`, with no change elsewhere.

Accepted models:
- a depth model folder (``model.json`` with ``task: depth`` + state dict of :class:`CompactDepthNet`
  or a TorchScript module + ``weights.sha256``); ``None`` means the bundled
  ``Resources/Models/endoscopy-depth``, a bundled model's name its folder;
- a local Hugging Face Depth Anything folder (V1 or V2, ``config.json`` + safetensors), read with the
  optional ``transformers`` package without downloading anything (see :mod:`.hf`);
- a bare TorchScript file: input (B, 3, H, W) float RGB in [0, 1], output (B, 1, H, W) or (B, H, W)
  depth; it is treated as relative (not metric) unless ``metric=True``.

Hugging Face folders and bare TorchScript files carry no hash: their SHA-256 is recorded on first use and
verified after (:mod:`SurgicalAICore.checksums`), like nnU-Net folders and MONAI bundles.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from SurgicalAICore.checksums import verify_or_record_file
from SurgicalAICore.device import select_device
from SurgicalAICore.errors import ModelError
from SurgicalAICore.model_folder import load_weights, read_model_folder
from SurgicalDepthLib.depth.hf import is_hf_depth_folder, load_hf_depth_folder
from SurgicalDepthLib.depth.model import DEPTH_SCHEMA, TorchDepthEstimator, resolve_model_path
from SurgicalDepthLib.depth.network import build_depth_network


class DepthModelLoader(Protocol):
    def can_load(self, path: Path) -> bool: ...

    def load(self, path: Path, device: torch.device) -> TorchDepthEstimator: ...


def _load_model_folder(path: Path, device: torch.device) -> TorchDepthEstimator:
    folder = read_model_folder(path, DEPTH_SCHEMA)
    card = folder.card
    weights = load_weights(folder, map_location="cpu")
    if folder.is_torchscript:
        module = weights
    else:
        arch = card.get("architecture", {})
        if arch.get("name", "CompactDepthNet") != "CompactDepthNet":
            raise ModelError(f"Model {path}: unknown depth architecture '{arch.get('name')}'.")
        module = build_depth_network(arch.get("hyper_parameters", {}))
        try:
            module.load_state_dict(weights)
        except RuntimeError as error:
            raise ModelError(f"Model {path}: weights do not fit the architecture in model.json "
                             f"({' '.join(str(error).split())[:200]}).") from None
    size = card["input_size"]
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 and s % 32 == 0 for s in size):
        raise ModelError(f"Model {path}: input_size must be [H, W], positive multiples of 32.")
    norm = card["normalisation"]
    try:
        mean = np.asarray(norm["mean"], np.float32).reshape(3)
        std = np.asarray(norm["std"], np.float32).reshape(3)
    except (KeyError, ValueError):
        raise ModelError(f"Model {path}: normalisation needs 3 'mean' and 3 'std' values.") from None
    module.eval().to(device)
    if device.type == "cpu" and not folder.is_torchscript:
        # folding batch norms into the convolutions: ~15 % faster on CPU, same depth to 1e-4 mm
        try:
            module = torch.jit.freeze(torch.jit.script(module))
        except Exception:  # an exotic torch build without freezing still runs the eager module
            pass
    return TorchDepthEstimator(module, device, card, (int(size[0]), int(size[1])), mean, std,
                          bool(card.get("is_metric", True)))


def _load_torchscript_file(path: Path, device: torch.device) -> TorchDepthEstimator:
    verify_or_record_file(path)  # no weights.sha256 of its own: trust on first use, verified after
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except Exception as error:  # torch raises many types for corrupt files
        raise ModelError(f"Cannot read depth model {path}: {str(error).splitlines()[0]}") from None
    module.eval().to(device)
    card = {"name": path.stem, "task": "depth", "weights_format": "torchscript", "depth_unit": "relative"}
    return TorchDepthEstimator(module, device, card, None, np.zeros(3, np.float32), np.ones(3, np.float32), False)


def _check_runs_as_depth_model(estimator: TorchDepthEstimator, path: Path) -> None:
    """A TorchScript file can hold any network: run it once on a small frame so a wrong model is one
    ModelError at loading, not a traceback in the middle of a video."""
    frame = np.full((64, 64, 3), 128, np.uint8)
    try:
        depth = estimator.predict(frame)
    except Exception as error:  # whatever the scripted code raises, it is not a depth model
        text = " ".join(str(error).split())[:160]
        raise ModelError(f"{path} is not a depth model: it fails on an RGB frame "
                         f"({type(error).__name__}: {text}).") from None
    if depth.shape != frame.shape[:2]:
        raise ModelError(f"{path} is not a depth model: it gives {depth.shape} for a 64x64 frame.")


class _Loader:
    def __init__(self, can_load, load):
        self.can_load, self.load = can_load, load


LOADERS: list[DepthModelLoader] = [
    _Loader(lambda p: p.is_dir() and is_hf_depth_folder(p), load_hf_depth_folder),
    _Loader(lambda p: p.is_dir(), _load_model_folder),
    _Loader(lambda p: p.is_file(), _load_torchscript_file),
]


def load_depth_model(path: str | Path | None = None, device: str = "auto",
                     metric: bool | None = None) -> TorchDepthEstimator:
    """Load a depth model.

    Args:
        path: a depth model folder, a Hugging Face Depth Anything folder or a TorchScript file;
            None: the bundled default model; a bundled model's name (e.g. ``endoscopy-depth-video``).
        device: auto, cpu, cuda or mps (see ``SurgicalAICore.device.select_device``).
        metric: override whether the model's depth is metric (mm) or relative.

    Raises:
        ModelError: the path does not exist or holds no loadable depth model.
    """
    dev = select_device(device)
    path = resolve_model_path(path)
    if not path.exists():
        raise ModelError(f"Depth model folder not found: {path}")
    loader = next((candidate for candidate in LOADERS if candidate.can_load(path)), None)
    if loader is None:
        raise ModelError(f"Not a depth model (folder, Hugging Face folder or TorchScript file): {path}")
    estimator = loader.load(path, dev)
    if estimator.card.get("weights_format") == "torchscript":
        _check_runs_as_depth_model(estimator, path)
    if metric is not None:
        estimator.is_metric = bool(metric)
    return estimator
