"""Self-supervised adaptation of a depth model to the user's own video: ``adapt_depth_model(...)``.

Camera motion between neighbouring frames comes from :mod:`.adapt_motion`; the network is then
fine-tuned on photometric reprojection, sparse-point consistency, smoothness and a prior to the
source model (:mod:`.adapt_losses`); optionally dense depth consistency between registered frames (on by
default with the clip's reconstruction), distillation to the source model, and decoder-only training.
The last frames of the clip are held back: the card reports the photometric and sparse-point errors on
them before and after adaptation.

Writes nothing until the end (model folder moved into place atomically); a checkpoint
``<output>.checkpoints/last.pt`` (written atomically) lets a cancelled or interrupted run resume.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from SurgicalAICore.errors import InputError, ModelError, OperationCancelled
from SurgicalAICore.progress import CancelToken, Progress

from SurgicalDepthLib.depth import adapt_losses as L
from SurgicalDepthLib.depth.adapt_motion import (
    ClipMotion,
    MotionConfig,
    PairMotion,
    estimate_clip_motion,
    rescale_pair_uv,
)
from SurgicalDepthLib.depth.clip_sfm import SfmConfig, clip_motion_from_sfm, reconstruct_clip
from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics


@dataclass
class AdaptConfig:
    minutes: float = 12.0  # budget of the whole adaptation, motion included
    # "wall": wall-clock minutes; "cpu": this process's CPU minutes divided by ``threads``, i.e. the wall
    # time the run would take with the cores to itself (for benchmarks on a shared machine)
    clock: str = "wall"
    max_steps: int = 100000
    batch_size: int = 4
    lr: float = 1e-4
    # learning rate of per-pair motion corrections; off by default: on synthetic clips the joint refinement
    # lowered the photometric error further but made the depth worse (AbsRel 0.47 -> 0.55)
    pose_lr: float = 0.0
    photometric_weight: float = 1.0
    # scale-free error at the reconstructed points. None: SPARSE_WITH_SFM with the clip's reconstruction (beside
    # the depth consistency it fits the clip and holds better on unseen frames than 0.5 or 5:
    # docs/BENCHMARKS_adapt.md), SPARSE_WITH_PAIRS with two-view pairs
    sparse_weight: float | None = None
    smooth_weight: float = 1e-3
    prior_shape_weight: float = 0.02
    prior_scale_weight: float = 0.1
    # dense depth consistency between registered frame pairs (Liu et al. TMI 2020); each batch then holds
    # batch_size / 2 frames and one registered partner of each. None: CONSISTENCY_WITH_SFM with the clip's
    # reconstruction (best on jhu_sinus_dev's unseen frames of 0, 1, 3 and 10: docs/BENCHMARKS_adapt.md), off
    # with two-view pairs (unmeasured there; their independent poses are 1 deg / 10 deg off)
    consistency_weight: float | None = None
    # scale-and-shift-invariant distillation to the frozen source model's disparity (against forgetting)
    distill_weight: float = 0.0
    # "all" layers adapt, or only the "decoder" (the encoder, its batch statistics included, stays frozen)
    train_layers: str = "all"
    holdout_fraction: float = 0.1
    min_frames: int = 10
    seed: int = 0
    threads: int = 2
    checkpoint_every: int = 50
    # "pairs": two-view motion between neighbouring frames (adapt_motion); "sfm": structure from motion over
    # the whole clip (clip_sfm: consistent poses, multi-view sparse points); "auto": sfm, or pairs where the clip
    # cannot be reconstructed (on real sinus video sfm's unseen-frame AbsRel is 0.11 against pairs' 0.14:
    # docs/BENCHMARKS_adapt.md)
    motion_source: str = "auto"
    motion: MotionConfig = field(default_factory=MotionConfig)
    sfm: SfmConfig = field(default_factory=SfmConfig)


@dataclass
class Clip:
    frames: list[np.ndarray]
    names: list[str]
    sha256: str


def parse_range(text: str | None) -> tuple[int, int] | None:
    """``"A-B"`` or ``"A:B"`` (0-based positions in the source, inclusive) -> (A, B)."""
    if not text:
        return None
    parts = text.replace(":", "-").split("-")
    try:
        a, b = int(parts[0]), int(parts[1])
    except (ValueError, IndexError):
        raise InputError(f"Frame range '{text}' must look like FIRST-LAST (0-based positions, inclusive).") from None
    if len(parts) != 2 or a < 0 or b < a:
        raise InputError(f"Frame range '{text}' must look like FIRST-LAST with 0 <= FIRST <= LAST.")
    return a, b


def read_clip(
    source, frame_range: tuple[int, int] | None = None, cancel: CancelToken | None = None, max_width: int = 960
) -> Clip:
    """The frames of a video file, frame folder or frame source, in order, checked for a constant size.

    Frames wider than ``max_width`` are kept downscaled (motion runs at 640, the network at 320 pixels wide;
    300 full-HD frames would hold 1.9 GB); the hash is of the frames as read."""
    import cv2

    from SurgicalDepthLib.video.sources import open_source

    first, last = frame_range or (0, 10**9)
    frames, names = [], []
    shape = None
    digest = hashlib.sha256()
    with open_source(source) as src:
        for k, frame in enumerate(src):
            if cancel is not None:
                cancel.raise_if_cancelled()
            if k > last:
                break
            if k < first:
                continue
            if frames and frame.rgb.shape != shape:
                raise InputError(
                    f"Frame {frame.name} is {frame.width}x{frame.height} but the clip started at "
                    f"{shape[1]}x{shape[0]}: frames must not change size."
                )
            shape = frame.rgb.shape
            rgb = np.ascontiguousarray(frame.rgb)
            digest.update(rgb.tobytes())
            if rgb.shape[1] > max_width:
                rgb = cv2.resize(
                    rgb, (max_width, round(rgb.shape[0] * max_width / rgb.shape[1])), interpolation=cv2.INTER_AREA
                )
            frames.append(rgb)
            names.append(frame.name)
    return Clip(frames, names, digest.hexdigest())


def fit_clip_camera(camera: CameraIntrinsics | None, width: int, height: int) -> CameraIntrinsics:
    """The intrinsics for the clip's frame size (rescaled when only the resolution differs)."""
    if camera is None:
        raise InputError(
            "No camera intrinsics: adaptation needs them (give a calibration file, e.g. --camera "
            "camera.json) and cannot estimate them from an uncalibrated clip."
        )
    if (camera.width, camera.height) == (width, height):
        return camera
    if abs(camera.width / camera.height - width / height) > 0.01:
        raise InputError(
            f"Camera intrinsics are for {camera.width}x{camera.height} frames but the clip is "
            f"{width}x{height} with another aspect ratio; use the matching calibration."
        )
    return camera.scaled(width, height)


def _source_network(model_path):
    from SurgicalAICore.model_folder import load_weights, read_model_folder

    from SurgicalDepthLib.depth.model import DEPTH_SCHEMA, resolve_model_path, video_model_path
    from SurgicalDepthLib.depth.network import build_depth_network

    path = resolve_model_path(model_path) if model_path else video_model_path()
    if not path.is_dir():
        raise ModelError(f"Depth model folder not found: {path}")
    folder = read_model_folder(path, DEPTH_SCHEMA)
    arch = folder.card.get("architecture", {})
    if folder.is_torchscript or arch.get("name", "CompactDepthNet") != "CompactDepthNet":
        raise ModelError(f"Model {path}: adaptation needs a CompactDepthNet model folder (state dict).")
    net = build_depth_network(arch.get("hyper_parameters", {}))
    try:
        net.load_state_dict(load_weights(folder, map_location="cpu"))
    except RuntimeError:
        raise ModelError(f"Model {path}: weights do not fit the architecture in model.json.") from None
    return net, folder.card, path


def clip_masks(frames: Sequence[np.ndarray], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Field-of-view mask at full size, and per-frame usable masks (FOV minus speculars) at ``size`` (H, W)."""
    import cv2

    from SurgicalDepthLib.video.prep import field_stop_mask, specular_mask

    pick = np.linspace(0, len(frames) - 1, min(len(frames), 9)).round().astype(int)
    # the field stop is fixed on the sensor: the median frame hides frames where the scene is dark at the rim
    fov = field_stop_mask(np.median(np.stack([frames[i] for i in pick]), axis=0).astype(np.uint8))
    h, w = size
    fov_small = cv2.resize(fov.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    fov_small = cv2.erode(fov_small, np.ones((5, 5), np.uint8)).astype(bool)
    usable = np.stack([fov_small & ~specular_mask(cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA)) for f in frames])
    return fov, usable


def _motion_to_state(motion: ClipMotion) -> dict:
    return {
        "camera": json.dumps(motion.camera.to_dict()),
        "frames": motion.frames,
        "flow": motion.median_flow_px,
        "registered": list(motion.registered),
        "pairs": [
            {
                "i": p.i,
                "j": p.j,
                "R": torch.from_numpy(p.R.copy()),
                "t": torch.from_numpy(p.t.copy()),
                "uv": torch.from_numpy(p.uv),
                "depth": torch.from_numpy(p.depth),
                "inliers": p.inliers,
                "parallax": p.parallax_px,
                "rms": p.rms_px,
            }
            for p in motion.pairs
        ],
    }


def _motion_from_state(state: dict) -> ClipMotion:
    pairs = [
        PairMotion(
            int(p["i"]),
            int(p["j"]),
            p["R"].numpy(),
            p["t"].numpy(),
            p["uv"].numpy(),
            p["depth"].numpy(),
            int(p["inliers"]),
            float(p["parallax"]),
            float(p["rms"]),
        )
        for p in state["pairs"]
    ]
    return ClipMotion(
        CameraIntrinsics.from_dict(json.loads(state["camera"])),
        pairs,
        int(state["frames"]),
        float(state["flow"]),
        list(state["registered"]),
    )


class _Batcher:
    """Tensors at the network's size and the per-pair geometry scaled to it."""

    def __init__(self, frames, usable, motion: ClipMotion, camera: CameraIntrinsics, mean, std):
        import cv2

        h, w = camera.height, camera.width
        arr = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames])
        self.images = torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255.0
        self.mask = torch.from_numpy(usable).unsqueeze(1).float()
        self.mean = torch.as_tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.K = torch.as_tensor(camera.K, dtype=torch.float32)
        self.pairs: dict[int, list[dict]] = {}
        for p in motion.pairs:
            uv = rescale_pair_uv(p.uv, motion.camera, camera)
            inside = (uv[:, 0] >= 0) & (uv[:, 0] <= w - 1) & (uv[:, 1] >= 0) & (uv[:, 1] <= h - 1)
            self.pairs.setdefault(p.i, []).append(
                {
                    "k": sum(len(v) for v in self.pairs.values()),
                    "j": p.j,
                    "R": torch.as_tensor(p.R, dtype=torch.float32),
                    "t": torch.as_tensor(p.t, dtype=torch.float32),
                    "uv": torch.from_numpy(uv[inside]),
                    "depth": torch.from_numpy(p.depth[inside]),
                }
            )

        # a small correction of every pair's motion is learnt with the depth (the two-view estimates of a
        # short baseline are noisy, and the photometric loss can tell); held-back pairs are never corrected
        self.pose_delta = torch.zeros(len(motion.pairs), 6, requires_grad=True)

    def pose(self, pair: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Corrected (R, t) of a pair, |t| = 1."""
        d = self.pose_delta[pair["k"]]
        R = _rotation(d[:3]) @ pair["R"]
        t = pair["t"] + d[3:]
        return R, t / t.norm()

    def normalised(self, idx) -> torch.Tensor:
        return (self.images[idx] - self.mean) / self.std


def _rotation(rvec: torch.Tensor) -> torch.Tensor:
    """Rotation matrix of an axis-angle vector (Rodrigues), differentiable at zero."""
    theta2 = (rvec * rvec).sum()
    x, y, z = rvec
    zero = torch.zeros((), dtype=rvec.dtype)
    k = torch.stack([torch.stack([zero, -z, y]), torch.stack([z, zero, -x]), torch.stack([-y, x, zero])])
    # series forms near zero keep the gradient finite
    theta = torch.sqrt(theta2 + 1e-12)
    a = torch.where(theta2 < 1e-8, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(theta2 < 1e-8, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / (theta2 + 1e-12))
    return torch.eye(3, dtype=rvec.dtype) + a * k + b * (k @ k)


def _frame_losses(b: _Batcher, i: int, depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(photometric, sparse) losses of one target frame ``i`` with predicted ``depth`` (1, 1, H, W)."""
    target = b.images[i : i + 1]
    warped, sources, valid, sparse = [], [], [], []
    for pair in b.pairs[i]:
        at_points = L.sample_depth(depth, pair["uv"])
        log_s = L.fit_log_scale(at_points, pair["depth"])
        sparse.append(L.sparse_loss(at_points, pair["depth"], log_s))
        src = b.images[pair["j"] : pair["j"] + 1]
        R, t = b.pose(pair)
        R, t = R.unsqueeze(0), (t * torch.exp(log_s)).unsqueeze(0)
        w, inside = L.warp(src, depth, b.K, R, t)
        # pixels that land outside the neighbour's field stop compare tissue with the black border
        w_mask, _ = L.warp(b.mask[pair["j"] : pair["j"] + 1], depth, b.K, R, t)
        warped.append(w)
        sources.append(src)
        valid.append(inside * (w_mask > 0.99).float())
    photo, _ = L.min_reprojection_loss(target, warped, sources, valid, b.mask[i : i + 1])
    return photo, torch.stack(sparse).mean()


def _evaluate(net, b: _Batcher, frames: Sequence[int], cfg: AdaptConfig) -> dict[str, float]:
    """Mean photometric and sparse-point errors over ``frames`` (those with a registered neighbour)."""
    photo, sparse = [], []
    net.eval()
    with torch.no_grad():
        for i in frames:
            if i not in b.pairs:
                continue
            depth = net(b.normalised([i]))
            p, s = _frame_losses(b, i, depth)
            photo.append(float(p))
            sparse.append(float(s))
    _set_train_mode(net, cfg)
    if not photo:
        return {}
    return {
        "photometric": round(float(np.mean(photo)), 5),
        "sparse_log_error": round(float(np.mean(sparse)), 5),
        "frames": len(photo),
    }


@dataclass
class AdaptResult:
    path: Path
    card: dict


def _clock(cfg: AdaptConfig) -> float:
    if cfg.clock == "cpu":
        return time.process_time() / max(1, int(cfg.threads))
    return time.time()


def _split(n: int, fraction: float) -> tuple[list[int], list[int]]:
    hold = max(2, round(n * fraction)) if fraction > 0 else 0
    return list(range(n - hold)), list(range(n - hold, n))


def _drop_pairs_across(b: _Batcher, held: set[int]) -> None:
    """No pair may reach across the split: the held-back frames are never seen during training."""
    for i in list(b.pairs):
        b.pairs[i] = [q for q in b.pairs[i] if (i in held) == (q["j"] in held)]
        if not b.pairs[i]:
            del b.pairs[i]


def _restore(state: dict, net, b: _Batcher, opt) -> tuple[int, list[dict]]:
    """Network, motion corrections and optimiser from a checkpoint: (step, history)."""
    net.load_state_dict(state["model"])
    with torch.no_grad():
        b.pose_delta.copy_(state["pose_delta"])
    opt.load_state_dict(state["optimizer"])
    return int(state["step"]), json.loads(state["history"])


def _checkpoint_dir(out: Path) -> Path:
    return out.with_name(out.name + ".checkpoints")


def _save_checkpoint(path: Path, state: dict) -> None:
    from SurgicalAICore.atomic import write_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    # a unique temporary removed on any interrupt (a fixed ``last.pt.tmp`` was left behind by SIGTERM)
    write_atomic(path, lambda tmp: torch.save(state, str(tmp)))


def _load_checkpoint(path: Path, sha: str) -> dict | None:
    if not path.exists():
        return None
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for corrupt files
        raise ModelError(f"Checkpoint {path} is corrupt or unreadable: {str(error).splitlines()[0]}") from None
    if not isinstance(state, dict) or state.get("frames_sha256") != sha:
        raise InputError(
            f"Checkpoint {path} belongs to another clip or frame range; delete it or choose another output folder."
        )
    return state


CONSISTENCY_WITH_SFM = 3.0
SPARSE_WITH_SFM, SPARSE_WITH_PAIRS = 2.0, 0.5
MOTION_SOURCES = ("auto", "sfm", "pairs")


def resolved(cfg: AdaptConfig) -> AdaptConfig:
    """``cfg`` with its automatic settings decided (the consistency and sparse weights by the motion source;
    "auto" tries the clip's reconstruction first)."""
    sfm = cfg.motion_source in ("sfm", "auto")
    if cfg.consistency_weight is None:
        cfg = replace(cfg, consistency_weight=CONSISTENCY_WITH_SFM if sfm else 0.0)
    if cfg.sparse_weight is None:
        cfg = replace(cfg, sparse_weight=SPARSE_WITH_SFM if sfm else SPARSE_WITH_PAIRS)
    return cfg


def check_loss_options(cfg: AdaptConfig) -> None:
    """One-line refusals of loss weights and trainable layers that cannot work."""
    cfg = resolved(cfg)
    for name in ("photometric_weight", "sparse_weight", "smooth_weight", "consistency_weight", "distill_weight",
                 "prior_shape_weight", "prior_scale_weight"):
        value = float(getattr(cfg, name))
        if not math.isfinite(value) or value < 0:
            raise InputError(f"{name.replace('_', ' ').capitalize()} {value} must be zero or positive.")
    if cfg.train_layers not in TRAIN_LAYERS:
        raise InputError(f"Unknown trainable layers '{cfg.train_layers}': use {' or '.join(TRAIN_LAYERS)}.")
    if not (cfg.lr > 0 and math.isfinite(cfg.lr)):
        raise InputError(f"Learning rate {cfg.lr} must be positive.")
    if cfg.consistency_weight > 0 and cfg.batch_size < 2:
        raise InputError("Depth consistency needs a batch of at least 2 frames (a frame and its partner).")


TRAIN_LAYERS = ("all", "decoder")


def _set_train_mode(net, cfg: AdaptConfig) -> None:
    """Training mode, with the frozen encoder's batch statistics kept when only the decoder adapts."""
    net.train()
    if cfg.train_layers == "decoder":
        net.stages.eval()


def _trainable_parameters(net, cfg: AdaptConfig) -> list:
    if cfg.train_layers == "decoder":
        for param in net.stages.parameters():
            param.requires_grad_(False)
    return [q for q in net.parameters() if q.requires_grad]


def _pick_batch(rng, b: _Batcher, trainable: list[int], cfg: AdaptConfig) -> list[int]:
    """Random training frames; with depth consistency, half of them and one registered partner of each."""
    k = min(cfg.batch_size, len(trainable))
    if cfg.consistency_weight <= 0:
        return [int(i) for i in rng.choice(trainable, k, replace=False)]
    idx: list[int] = []
    for i in rng.choice(trainable, max(1, k // 2), replace=False):
        partner = b.pairs[int(i)][int(rng.integers(len(b.pairs[int(i)])))]["j"]
        idx += [q for q in (int(i), int(partner)) if q not in idx]
    return idx


def adapt_depth_model(
    source,
    output,
    camera: CameraIntrinsics | None = None,
    model=None,
    config: AdaptConfig | None = None,
    frame_range: tuple[int, int] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress=None,
    cancel: CancelToken | None = None,
    log: Callable[[str], None] = lambda m: None,
) -> AdaptResult:
    """Adapt ``model`` (default: the bundled video model, ``endoscopy-depth-video``) to the clip ``source`` and
    write ``output``."""
    requested = config or AdaptConfig()
    cfg = resolved(requested)  # the automatic weights are decided again once the motion source is known
    out = Path(output)
    if out.exists() and not overwrite:
        raise InputError(f"Output model folder {out} already exists; choose another or allow overwriting.")
    if cfg.minutes <= 0:
        raise InputError(f"Time budget {cfg.minutes} min must be positive.")
    if cfg.clock not in ("wall", "cpu"):
        raise InputError(f"Unknown budget clock '{cfg.clock}': use wall or cpu.")
    if cfg.motion_source not in MOTION_SOURCES:
        raise InputError(f"Unknown motion source '{cfg.motion_source}': use {', '.join(MOTION_SOURCES)}.")
    check_loss_options(cfg)
    t0 = _clock(cfg)
    p = Progress.of(progress, cancel)
    net, source_card, model_path = _source_network(model)
    size = tuple(source_card["input_size"])
    clip = read_clip(source, frame_range, cancel)
    n = len(clip.frames)
    if n < cfg.min_frames:
        raise InputError(f"The clip has {n} frames; adaptation needs at least {cfg.min_frames}.")
    cam = fit_clip_camera(camera, clip.frames[0].shape[1], clip.frames[0].shape[0])
    ckpt_path = _checkpoint_dir(out) / "last.pt"
    state = _load_checkpoint(ckpt_path, clip.sha256) if resume else None
    fov, usable = clip_masks(clip.frames, size)
    spent = float(state["minutes"]) if state else 0.0

    def minutes() -> float:
        return spent + (_clock(cfg) - t0) / 60.0

    if state:
        motion = _motion_from_state(state["motion"])
        used = json.loads(state.get("config", "{}")).get("motion_source", "pairs")
        log(f"resumed at step {state['step']}")
    else:
        motion, used = _estimate_motion(clip.frames, cam, fov, cfg, p.sub(0.0, 0.3), cancel, log)
    if requested.motion_source == "auto" and used == "pairs":
        # two-view pairs' independent poses would carry their errors densely from frame to frame
        requested = replace(requested, consistency_weight=0.0)
    cfg = resolved(replace(requested, motion_source=used))
    train_cam = cam.scaled(size[1], size[0])
    norm = source_card["normalisation"]
    batcher = _Batcher(clip.frames, usable, motion, train_cam, norm["mean"], norm["std"])
    train_ids, held_ids = _split(n, cfg.holdout_fraction)
    _drop_pairs_across(batcher, set(held_ids))
    trainable = [i for i in train_ids if i in batcher.pairs]
    if len(trainable) < 2:
        raise InputError("Too few training frames have a registered neighbour for adaptation.")
    torch.set_num_threads(max(1, int(cfg.threads)))
    torch.manual_seed(cfg.seed)
    source_net, _, _ = _source_network(model_path)
    source_net.eval()
    before = state["before"] if state else _evaluate(source_net, batcher, held_ids, cfg)
    with torch.no_grad():  # partners of a consistency batch need not have pairs of their own
        source_depth = torch.cat(
            [source_net(batcher.normalised(train_ids[k : k + 8])) for k in range(0, len(train_ids), 8)]
        )
    source_of = {i: k for k, i in enumerate(train_ids)}
    opt = torch.optim.AdamW(
        [
            {"params": _trainable_parameters(net, cfg), "lr": cfg.lr},
            {"params": [batcher.pose_delta], "lr": cfg.pose_lr},
        ],
        weight_decay=0.0,
    )
    step, history = _restore(state, net, batcher, opt) if state else (0, [])

    def checkpoint():
        _save_checkpoint(
            ckpt_path,
            {
                "model": net.state_dict(),
                "optimizer": opt.state_dict(),
                "step": step,
                "minutes": minutes(),
                "frames_sha256": clip.sha256,
                "pose_delta": batcher.pose_delta.detach().clone(),
                "before": before,
                "history": json.dumps(history),
                "motion": _motion_to_state(motion),
                "config": json.dumps(asdict(cfg)),
            },
        )

    rng = np.random.default_rng((cfg.seed, step))
    budget = cfg.minutes * 0.97  # the held-back evaluation and the writing take the rest
    train_p = p.sub(0.3, 0.97)
    _set_train_mode(net, cfg)
    start_min = minutes()
    try:
        while step < cfg.max_steps and minutes() < budget:
            if cancel is not None:
                cancel.raise_if_cancelled()
            idx = _pick_batch(rng, batcher, trainable, cfg)
            loss, parts = _step_loss(net, batcher, idx, source_depth[[source_of[i] for i in idx]], cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            step += 1
            if not math.isfinite(parts["loss"]):
                raise ModelError(f"Adaptation diverged at step {step}; lower the learning rate.")
            history.append({"step": step, **parts})
            done = (minutes() - start_min) / max(budget - start_min, 1e-6)
            train_p.step(min(done, 1.0), f"step {step} photometric {parts['photometric']:.4f}")
            if step % cfg.checkpoint_every == 0:
                checkpoint()
    except OperationCancelled:
        if step > 0:
            checkpoint()
        raise
    after = _evaluate(net, batcher, held_ids, cfg)
    p.step(0.98, "writing the model folder")
    card = _card(
        out.name,
        net,
        source_card,
        model_path,
        clip,
        frame_range,
        train_ids,
        held_ids,
        motion,
        cfg,
        train_cam,
        step,
        minutes(),
        before,
        after,
    )
    from SurgicalDepthLib.depth.model import save_depth_model

    from SurgicalAICore.signals import signals_deferred

    with signals_deferred():  # the model in place and its checkpoint gone, or neither
        save_depth_model(out, net, card, overwrite=overwrite)
        shutil.rmtree(_checkpoint_dir(out), ignore_errors=True)
    p.step(1.0, "done")
    return AdaptResult(out, card)


def _estimate_motion(frames, cam: CameraIntrinsics, fov, cfg: AdaptConfig, p: Progress, cancel, log):
    """(motion, the source used): "auto" tries the clip's reconstruction and falls back to two-view pairs
    where it cannot be made (too few features or registered frames); a cancel is never a fallback."""
    if cfg.motion_source != "auto":
        return _clip_motion(frames, cam, fov, cfg, p, cancel), cfg.motion_source
    try:
        return _clip_motion(frames, cam, fov, replace(cfg, motion_source="sfm"), p, cancel), "sfm"
    except InputError as error:
        log(f"structure from motion over the clip failed ({error}); using two-view pairs instead, without "
            "depth consistency")
    return _clip_motion(frames, cam, fov, replace(cfg, motion_source="pairs"), p, cancel), "pairs"


def _clip_motion(frames, cam: CameraIntrinsics, fov, cfg: AdaptConfig, p: Progress, cancel) -> ClipMotion:
    if cfg.motion_source == "sfm":
        sfm = SfmConfig(**{**asdict(cfg.sfm), "threads": max(1, int(cfg.threads)), "seed": cfg.seed})
        rec = reconstruct_clip(frames, cam, fov, sfm, progress=p.step, cancel=cancel)
        return clip_motion_from_sfm(rec, sfm)
    return estimate_clip_motion(frames, cam, fov, cfg.motion, progress=p.step, cancel=cancel)


def _consistency(b: _Batcher, idx: list[int], depth: torch.Tensor) -> torch.Tensor:
    """Mean dense depth consistency over the registered pairs inside the batch, each pair's translation
    brought to frame i's predicted scale by its sparse points (the SfM scale is arbitrary)."""
    at = {i: k for k, i in enumerate(idx)}
    terms = []
    for i in idx:
        for pair in b.pairs.get(i, []):
            if pair["j"] not in at:
                continue
            d_i, d_j = depth[at[i] : at[i] + 1], depth[at[pair["j"]] : at[pair["j"]] + 1]
            log_s = L.fit_log_scale(L.sample_depth(d_i, pair["uv"]), pair["depth"])
            R, t = b.pose(pair)
            terms.append(
                L.depth_consistency_loss(
                    d_i, d_j, b.K, R.unsqueeze(0), (t * torch.exp(log_s)).unsqueeze(0),
                    b.mask[i : i + 1], b.mask[pair["j"] : pair["j"] + 1],
                )
            )
    return torch.stack(terms).mean() if terms else depth.sum() * 0.0


def _step_loss(net, b: _Batcher, idx: list[int], source_depth: torch.Tensor, cfg: AdaptConfig):
    depth = net(b.normalised(idx))
    photo, sparse = [], []
    for k, i in enumerate(idx):
        if i not in b.pairs:  # a partner taken for depth consistency only
            continue
        ph, sp = _frame_losses(b, i, depth[k : k + 1])
        photo.append(ph)
        sparse.append(sp)
    photo_t, sparse_t = torch.stack(photo).mean(), torch.stack(sparse).mean()
    smooth = L.smoothness_loss(depth, b.images[idx])
    prior = L.prior_loss(depth, source_depth, b.mask[idx], cfg.prior_shape_weight, cfg.prior_scale_weight)
    loss = cfg.photometric_weight * photo_t + cfg.sparse_weight * sparse_t + cfg.smooth_weight * smooth + prior
    terms = {"loss": loss, "photometric": photo_t, "sparse": sparse_t, "prior": prior}
    if cfg.consistency_weight > 0:
        terms["consistency"] = _consistency(b, idx, depth)
        loss = loss + cfg.consistency_weight * terms["consistency"]
    if cfg.distill_weight > 0:
        terms["distill"] = L.distillation_loss(depth, source_depth, b.mask[idx])
        loss = loss + cfg.distill_weight * terms["distill"]
    terms["loss"] = loss
    return loss, {k: float(v.detach()) for k, v in terms.items()}


def _card(
    name,
    net,
    source_card,
    model_path,
    clip: Clip,
    frame_range,
    train_ids,
    held_ids,
    motion: ClipMotion,
    cfg: AdaptConfig,
    camera: CameraIntrinsics,
    steps: int,
    minutes: float,
    before: dict,
    after: dict,
) -> dict:
    from SurgicalDepthLib.depth.model import depth_card

    rms = [q.rms_px for q in motion.pairs]
    adaptation = {
        "method": "self-supervised (photometric reprojection + sparse points + prior to the source model"
        + (" + dense depth consistency" if cfg.consistency_weight > 0 else "")
        + (" + distillation" if cfg.distill_weight > 0 else "")
        + (", decoder only" if cfg.train_layers == "decoder" else "")
        + ")",
        "motion_source": cfg.motion_source,
        "source_model": source_card.get("name", Path(model_path).name),
        "source_video_sha256": clip.sha256,
        "frames": len(clip.frames),
        "frame_range": list(frame_range) if frame_range else None,
        "first_frame": clip.names[0],
        "last_frame": clip.names[-1],
        "train_frames": len(train_ids),
        "held_back_frames": [clip.names[held_ids[0]], clip.names[held_ids[-1]]] if held_ids else [],
        "motion": {
            "pairs": len(motion.pairs),
            "registered_frames": len(motion.registered),
            "median_flow_px": round(motion.median_flow_px, 2),
            "median_reprojection_rms_px": round(float(np.median(rms)), 3) if rms else None,
        },
        "settings": {k: v for k, v in asdict(cfg).items() if k not in ("motion", "sfm")}
        | ({"sfm": asdict(cfg.sfm)} if cfg.motion_source == "sfm" else {"motion": asdict(cfg.motion)}),
        "steps": steps,
        "minutes": round(minutes, 2),
    }
    metrics = {f"held_back_{k}_before": v for k, v in before.items() if k != "frames"}
    metrics |= {f"held_back_{k}_after": v for k, v in after.items() if k != "frames"}
    metrics["held_back_frames_evaluated"] = after.get("frames", 0)
    desc = (
        f"{source_card.get('name', 'depth model')} adapted without labels to the video "
        f"{clip.names[0]}..{clip.names[-1]}; depth in the source model's millimetre scale (approximate)."
    )
    card = depth_card(name, net.cpu(), (camera.height, camera.width), adaptation, metrics, camera.to_dict(), desc)
    card["license"] = source_card.get("license", card["license"])
    return card


def adapt_for_session(
    session, source, output, config: AdaptConfig | None = None, progress=None, cancel: CancelToken | None = None
) -> AdaptResult:
    """The panel's *Adapt to this video*: adapt the session's model (the bundled video model when none was
    chosen) to ``source`` with the session's camera, then make the session use the adapted model. Bad input leaves the
    session and its scene unchanged."""
    if session.camera is None:
        raise InputError("No camera intrinsics: load or calibrate the endoscope camera before adapting the model.")
    key = getattr(session, "model_key", None)
    model = key[0] if key and key[0] not in (None, "object") else None
    result = adapt_depth_model(
        source, output, camera=session.camera, model=model, config=config, progress=progress, cancel=cancel
    )
    device = key[1] if key and key[0] != "object" else "auto"
    session.set_model(str(result.path), device)
    return result
