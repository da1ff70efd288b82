"""Stereo as a teacher: fine-tune the monocular depth network on a user's own stereo video.

Stereo matching gives metric depth where it is confident (textured, seen by both views, left-right
consistent). Those pixels supervise a trainable copy of a CompactDepthNet model folder: L1 on log-depth
(so the metric scale is learned, not only the shape) plus a small prior pulling the prediction towards
the source model's, which keeps the network sane where stereo says nothing. Frames are prepared exactly
as inference prepares them (:meth:`TorchDepthEstimator._prepare`) and the loss is taken after the same
up-sampling to the frame's grid, so the model is taught what it will be asked. The last frames are held
back; AbsRel against stereo on their confident pixels is reported before and after, and recorded in the
new model card. Nothing is written until the end (atomic model folder), nothing at all on cancel or error.
"""
from __future__ import annotations

import hashlib
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from SurgicalAICore.errors import InputError
from SurgicalAICore.progress import Progress

from SurgicalDepthLib.stereo.matching import StereoSettings


@dataclass
class TeachSettings:
    lr: float = 2e-4
    batch_size: int = 4
    prior_weight: float = 0.1        # weight of |log pred - log source model| over all pixels
    min_confidence: float = 0.5      # stereo pixels at least this confident supervise
    min_coverage: float = 0.01       # a pair needs this share of confident pixels to be used
    flip: bool = True                # left-right flips: a mirrored scene has the same depth
    seed: int = 0
    device: str = "auto"
    stereo: StereoSettings = field(default_factory=StereoSettings)


@dataclass
class TeachResult:
    output: Path
    card: dict
    before: dict          # held-out metrics of the source model ("metric_*" and "median_*")
    after: dict
    train_frames: int
    held_out_frames: int
    steps: int
    seconds: float


@dataclass
class _Pairs:
    """Usable pairs: left views, stereo depth and confident masks (original grid), and what identifies them."""
    rgb: list
    depth: list
    mask: list
    indices: list
    pixels_sha256: str
    read: int
    calibration: object = None


# ------------------------------------------------------------------------------------------ base model
def load_trainable(model=None, device: torch.device | None = None):
    """(nn.Module in train-ready state, card, model path) from a CompactDepthNet model folder; TorchScript
    files and folders, and Hugging Face folders are refused: their weights cannot be fine-tuned here."""
    from SurgicalAICore.errors import ModelError
    from SurgicalAICore.model_folder import load_weights, read_model_folder

    from SurgicalDepthLib.depth.hf import is_hf_depth_folder
    from SurgicalDepthLib.depth.model import DEPTH_SCHEMA, resolve_model_path
    from SurgicalDepthLib.depth.network import build_depth_network

    path = resolve_model_path(model)
    refuse = "stereo teaching needs a CompactDepthNet model folder (model.json + state dict)"
    if not path.exists():
        raise ModelError(f"Depth model folder not found: {path}")
    if path.is_file():
        raise InputError(f"{path.name} is a TorchScript file: {refuse}.")
    if is_hf_depth_folder(path):
        raise InputError(f"{path.name} is a Hugging Face model: {refuse}.")
    folder = read_model_folder(path, DEPTH_SCHEMA)
    if folder.is_torchscript:
        raise InputError(f"{path.name} holds TorchScript weights: {refuse}.")
    arch = folder.card.get("architecture", {})
    if arch.get("name", "CompactDepthNet") != "CompactDepthNet":
        raise InputError(f"{path.name} is a '{arch.get('name')}' model: {refuse}.")
    net = build_depth_network(arch.get("hyper_parameters", {}))
    try:
        net.load_state_dict(load_weights(folder, map_location="cpu"))
    except RuntimeError as error:
        raise ModelError(f"Model {path}: weights do not fit the architecture in model.json "
                         f"({' '.join(str(error).split())[:200]}).") from None
    return net.to(device or torch.device("cpu")), folder.card, path


def _estimator(net, card: dict, device: torch.device):
    from SurgicalDepthLib.depth.model import TorchDepthEstimator

    norm = card["normalisation"]
    return TorchDepthEstimator(net, device, card, (int(card["input_size"][0]), int(card["input_size"][1])),
                               np.asarray(norm["mean"], np.float32), np.asarray(norm["std"], np.float32), True)


# ------------------------------------------------------------------------------------------ stereo pairs
def _read_pairs(source, calibration, settings: TeachSettings, frames: int, progress: Progress) -> _Pairs:
    from SurgicalDepthLib.stereo.calibration_files import StereoCalibration, load_stereo_calibration
    from SurgicalDepthLib.stereo.estimator import StereoDepthEstimator

    count = source.frame_count or 0
    stride = max(1, count // frames) if count else 1
    expected = min(frames, -(-count // stride)) if count else frames
    digest = hashlib.sha256()
    pairs = _Pairs([], [], [], [], "", 0)
    estimator = None
    for frame in source:
        if frame.index % stride:
            continue
        if estimator is None:
            if not isinstance(calibration, StereoCalibration):
                calibration = load_stereo_calibration(calibration, (frame.width, frame.height))
            calibration.check_frames(frame.width, frame.height)
            estimator = StereoDepthEstimator(calibration, settings.stereo)
        depth, confidence = estimator.predict_pair(frame.rgb, frame.right)
        mask = (confidence >= settings.min_confidence) & (depth > 0) & np.isfinite(depth)
        digest.update(frame.rgb.tobytes())
        digest.update(frame.right.tobytes())
        pairs.read += 1
        if mask.mean() >= settings.min_coverage:
            pairs.rgb.append(frame.rgb)
            pairs.depth.append(depth.astype(np.float32))
            pairs.mask.append(mask)
            pairs.indices.append(int(frame.index))
        progress.step(pairs.read / expected, f"stereo depth {pairs.read}/{expected} pairs")
        if pairs.read >= frames:
            break
    pairs.pixels_sha256, pairs.calibration = digest.hexdigest(), calibration
    if not pairs.read:
        raise InputError(f"{source.name}: no stereo pair was read.")
    if not pairs.rgb:
        raise InputError(f"{source.name}: stereo found no confident depth in {pairs.read} pairs (dark, "
                         f"textureless or mis-calibrated views); nothing to teach from.")
    if len(pairs.rgb) < 2:
        raise InputError(f"{source.name}: only {len(pairs.rgb)} of {pairs.read} pairs have confident stereo depth "
                         f"on {settings.min_coverage:.0%} of the view; teaching needs at least 2.")
    return pairs


def _source_record(inputs) -> list:
    """Names and SHA-256 of the input files (folders and nodes are identified by the pixel hash instead)."""
    from SurgicalAICore.model_folder import sha256_of

    out = []
    for item in inputs:
        if isinstance(item, (str, Path)) and Path(item).is_file():
            out.append({"name": Path(item).name, "sha256": sha256_of(item)})
        elif isinstance(item, (str, Path)):
            out.append({"name": Path(item).name, "kind": "folder"})
        elif item is not None:
            out.append({"name": str(getattr(item, "name", type(item).__name__)), "kind": type(item).__name__})
    return out


# ------------------------------------------------------------------------------------------ training
def _held_out_metrics(estimator, pairs: _Pairs, indices, cap_mm: float) -> dict:
    from SurgicalDepthLib.depth.metrics import depth_metrics

    estimator.module.eval()
    rows = {"metric": [], "median": []}
    for i in indices:
        pred = estimator.predict(pairs.rgb[i])
        for prefix, med in (("metric", False), ("median", True)):
            rows[prefix].append(depth_metrics(pred, pairs.depth[i], pairs.mask[i], cap_mm, median_scaled=med))
    out = {}
    for prefix, values in rows.items():
        for key in ("abs_rel", "rmse_mm", "delta1"):
            out[f"{prefix}_{key}"] = round(float(np.mean([v[key] for v in values])), 5)
    return out


def _freeze_batch_norm(net) -> None:
    """Batch norms keep their running statistics: a few frames of one video per step would overwrite
    statistics learned on many scenes and shift the predicted scale."""
    for module in net.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()


def _tensors(estimator, pairs: _Pairs, indices, device):
    xs = torch.cat([estimator._prepare([pairs.rgb[i]])[0] for i in indices])
    depth = torch.from_numpy(np.stack([pairs.depth[i] for i in indices]))[:, None].to(device)
    mask = torch.from_numpy(np.stack([pairs.mask[i] for i in indices]))[:, None].to(device)
    estimator.module.eval()   # the prior is the source model as inference runs it
    with torch.no_grad():
        prior = torch.cat([estimator.module(xs[i:i + 8]) for i in range(0, len(xs), 8)])
    return xs, depth, mask, prior.clamp_min(1e-3).log()


def _loss(net, x, depth, mask, log_prior, prior_weight: float) -> torch.Tensor:
    pred = net(x)
    log_pred = pred.clamp_min(1e-3).log()
    # the same bilinear up-sampling predict_batch applies, so the loss sees what inference returns
    up = F.interpolate(log_pred, size=depth.shape[-2:], mode="bilinear", align_corners=False)
    residual = (up - depth.clamp_min(1e-3).log()).abs()
    stereo = (residual * mask).sum() / mask.sum().clamp_min(1)
    return stereo + prior_weight * (log_pred - log_prior).abs().mean()


def _train(net, tensors, settings: TeachSettings, steps: int, minutes: float | None, progress: Progress) -> int:
    xs, depth, mask, log_prior = tensors
    optimiser = torch.optim.Adam(net.parameters(), lr=settings.lr)
    generator = torch.Generator().manual_seed(settings.seed)
    net.train()
    _freeze_batch_norm(net)
    deadline = time.monotonic() + minutes * 60 if minutes else math.inf
    done = 0
    while done < steps and time.monotonic() < deadline:
        pick = torch.randint(len(xs), (min(settings.batch_size, len(xs)),), generator=generator)
        batch = [xs[pick], depth[pick], mask[pick], log_prior[pick]]
        if settings.flip and torch.rand((), generator=generator) < 0.5:
            batch = [t.flip(-1) for t in batch]
        loss = _loss(net, *batch, settings.prior_weight)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        done += 1
        progress.step(done / steps, f"step {done}/{steps}, loss {loss.item():.4f}")
    net.eval()
    return done


# ------------------------------------------------------------------------------------------ entry point
def teach_from_stereo(source, calibration, output, model=None, settings: TeachSettings | None = None,
                      right=None, layout: str | None = None, fps: float = 30.0, frames: int = 64, steps: int = 300,
                      minutes: float | None = None, held_out_fraction: float = 0.2, progress=None,
                      cancel=None) -> TeachResult:
    """Fine-tune the depth model folder ``model`` (None: the bundled one) on stereo video and write the
    result to the new model folder ``output``.

    ``source`` (+ ``right`` or ``layout``, ``fps`` for frame folders) is anything :func:`open_stereo_source`
    opens; ``calibration`` a :class:`StereoCalibration` or a calibration file. Up to ``frames`` pairs are read
    (spread over the video when its length is known); the last ``held_out_fraction`` of the usable ones are
    held back for the before/after metrics. Training stops after ``steps`` steps or ``minutes``, whichever comes first.
    """
    from SurgicalAICore.device import select_device
    from SurgicalAICore.model_folder import sha256_of

    from SurgicalDepthLib.depth.model import depth_card, save_depth_model
    from SurgicalDepthLib.stereo.sources import open_stereo_source

    settings = settings or TeachSettings()
    output = Path(output)
    if output.exists():
        raise InputError(f"Output model folder {output} already exists; choose a new folder.")
    if frames < 2 or steps < 1 or (minutes is not None and minutes <= 0) or not 0 < held_out_fraction < 1:
        raise InputError(f"Teaching needs frames >= 2, steps >= 1, minutes > 0 and a held-out fraction in (0, 1); "
                         f"got {frames}, {steps}, {minutes}, {held_out_fraction}.")
    p = Progress.of(progress, cancel)
    started = time.monotonic()
    device = select_device(settings.device)
    net, base_card, base_path = load_trainable(model, device)
    stream = open_stereo_source(source, right, layout, fps=fps)
    try:
        pairs = _read_pairs(stream, calibration, settings, frames, p.sub(0.0, 0.3))
    finally:
        stream.close()
    n = len(pairs.rgb)
    held = min(n - 1, max(1, round(n * held_out_fraction)))
    train_idx, held_idx = list(range(n - held)), list(range(n - held, n))
    estimator = _estimator(net, base_card, device)
    cap = float(settings.stereo.max_depth_mm)
    before = _held_out_metrics(estimator, pairs, held_idx, cap)
    tensors = _tensors(estimator, pairs, train_idx, device)
    done = _train(net, tensors, settings, steps, minutes, p.sub(0.3, 0.95))
    after = _held_out_metrics(estimator, pairs, held_idx, cap)
    p.step(0.97, "writing the model")
    training = {
        "method": "stereo-teach",
        "base_model": {"name": base_card["name"], "path": base_path.name,
                       "sha256": sha256_of(base_path / base_card["weights"])},
        "source": {"inputs": _source_record([source, right]), "layout": layout, "pixels_sha256": pairs.pixels_sha256},
        "frames": {"read": pairs.read, "train": [pairs.indices[i] for i in train_idx],
                   "held_out": [pairs.indices[i] for i in held_idx]},
        "settings": {**asdict(settings), "frames": frames, "steps": steps, "minutes": minutes,
                     "held_out_fraction": held_out_fraction},
        "steps": done, "seconds": round(time.monotonic() - started, 1),
    }
    metrics = {"held_out_before": before, "held_out_after": after,
               "protocol": "stereo depth on confident held-out pixels; metric and median-scaled"}
    card = depth_card(output.name, net, tuple(base_card["input_size"]), training=training, metrics=metrics,
                      camera=pairs.calibration.left.to_dict(),
                      description=f"{base_card['name']} fine-tuned on stereo depth of {stream.name}.")
    card["normalisation"] = dict(base_card["normalisation"])
    save_depth_model(output, net.cpu(), card)
    p.step(1.0, f"taught: held-out AbsRel {before['metric_abs_rel']:.3f} -> {after['metric_abs_rel']:.3f}")
    return TeachResult(output, card, before, after, len(train_idx), held, done, training["seconds"])
