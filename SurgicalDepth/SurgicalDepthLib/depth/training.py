"""Training the compact depth network on synthetic datasets, with checkpoints, resume and curves.

Augmentation (per sample, seeded): :mod:`.augment` (crop at full pixel scale, flips, and
small random appearance transforms that make renders look like real endoscopy). Validation uses the
``val`` camera paths of the datasets (never
neighbouring frames of training paths) and optionally whole held-out scenarios.

Checkpoints go to ``<output>.checkpoints/`` (``last.pt``, written atomically). The model folder is
written only at the end, atomically.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from collections.abc import Callable, Sequence

import numpy as np
import torch

from SurgicalAICore.atomic import write_atomic
from SurgicalAICore.errors import InputError, ModelError
from SurgicalAICore.progress import CancelToken, Progress

from SurgicalDepthLib.depth.augment import augment_sample
from SurgicalDepthLib.depth.losses import depth_loss, scale_shift_invariant_loss
from SurgicalDepthLib.depth.model import IMAGENET, depth_card, save_depth_model
from SurgicalDepthLib.depth.network import DEFAULT_HYPER, build_depth_network
from SurgicalDepthLib.synthetic.dataset import SyntheticDepthDataset


@dataclass
class TrainConfig:
    steps: int = 2000
    batch_size: int = 8
    # whole frames by default: group norm's statistics over a crop differ from those over the whole
    # frame the network sees at inference, which shifted the predicted scale (AbsRel 0.03 -> 0.25)
    crop: tuple[int, int] = (256, 320)
    lr: float = 1e-3
    weight_decay: float = 1e-4
    silog_lambda: float = 0.5
    gradient_weight: float = 0.5
    ssi_weight: float = 0.0  # scale-and-shift-invariant inverse-depth loss (matches real-video scoring)
    val_every: int = 200
    val_frames: int = 64
    checkpoint_every: int = 100
    max_minutes: float | None = None
    # wall-clock limit of this run alone (one leg of a resumed series); max_minutes spans all legs
    leg_minutes: float | None = None
    seed: int = 0
    hyper: dict[str, object] = field(default_factory=lambda: dict(DEFAULT_HYPER))
    threads: int = 2
    device: str = "auto"
    augment: bool = True
    # appearance augmentation scale (1 = the full sigmas/probabilities in augment_sample); at full
    # strength a 2.2 M-parameter network trained on CPU for an hour no longer learned metric scale
    augment_strength: float = 0.6

    def validate(self) -> TrainConfig:
        """Refuse a configuration that cannot train (or would publish an untrained model), one line each."""
        from SurgicalAICore.validation import check_number, check_positive

        check_positive(self.lr, "The learning rate (--lr)", high=10)
        check_number(self.weight_decay, "The weight decay", low=0, high=10)
        for value, what in ((self.steps, "training steps (--steps)"), (self.batch_size, "batch size (--batch-size)"),
                            (self.val_every, "steps between validations (--val-every)"),
                            (self.checkpoint_every, "steps between checkpoints"),
                            (self.threads, "threads (--threads)")):
            check_number(value, f"The number of {what}", low=1, high=10**7, integer=True)
        check_number(self.silog_lambda, "The SILog lambda (--silog-lambda)", low=0, high=1)
        check_number(self.gradient_weight, "The gradient weight (--gradient-weight)", low=0, high=100)
        if self.max_minutes is not None:
            check_positive(self.max_minutes, "The time budget (--minutes)", high=60 * 24 * 30)
        for value in self.crop:
            check_number(value, "Each crop size (--crop)", low=32, high=8192, integer=True)
        return self


class TrainingSamples(torch.utils.data.Dataset):
    def __init__(self, frames: SyntheticDepthDataset, crop, augment: bool, seed: int, strength: float = 1.0):
        self.frames, self.crop, self.augment, self.seed, self.strength = frames, crop, augment, seed, strength
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int):
        item = self.frames[i]
        rng = np.random.default_rng((self.seed, self.epoch, i))
        img, d, v = augment_sample(item["rgb"], item["depth_mm"], item["valid"], rng, self.crop,
                                   self.strength if self.augment else 0.0)
        mean = np.asarray(IMAGENET["mean"], np.float32)
        std = np.asarray(IMAGENET["std"], np.float32)
        x = torch.from_numpy(((img - mean) / std).transpose(2, 0, 1).copy())
        return x, torch.from_numpy(d[None].copy()), torch.from_numpy(v[None].copy())


# ----------------------------------------------------------------------------------- training
def _atomic_torch_save(obj, path: Path) -> None:
    write_atomic(path, lambda tmp: torch.save(obj, str(tmp)))


def load_checkpoint(path: Path) -> dict:
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for corrupt files
        raise ModelError(f"Checkpoint {path} is corrupt or unreadable: {str(error).splitlines()[0]}") from None
    if not isinstance(ckpt, dict) or not {"model", "optimizer", "step", "config"} <= set(ckpt):
        raise ModelError(f"Checkpoint {path} is not a depth-training checkpoint.")
    return ckpt


def _collect(datasets: Sequence[str], split: str | None, exclude: Sequence[str] | None = None,
             only: Sequence[str] | None = None) -> list[SyntheticDepthDataset]:
    out = []
    for root in datasets:
        ds = SyntheticDepthDataset(root, split=split, exclude_scenarios=exclude, scenarios=only)
        if len(ds):
            out.append(ds)
    return out


class _Concat(SyntheticDepthDataset):
    def __init__(self, parts: list[SyntheticDepthDataset]):
        self.parts = parts
        self.offsets = np.cumsum([0] + [len(p) for p in parts])
        self.camera = parts[0].camera if parts else None

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def load(self, i: int) -> dict:
        k = int(np.searchsorted(self.offsets, i, side="right") - 1)
        return self.parts[k].load(i - int(self.offsets[k]))


def _validate(net, frames, device, count: int, cap_mm: float = 300.0) -> dict[str, float]:
    from SurgicalDepthLib.depth.metrics import depth_metrics

    net.eval()
    idx = np.linspace(0, len(frames) - 1, min(count, len(frames))).astype(int)
    mean = torch.tensor(IMAGENET["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET["std"]).view(1, 3, 1, 1)
    rows = []
    with torch.inference_mode():
        for i in idx:
            it = frames[int(i)]
            h, w = it["depth_mm"].shape
            x = torch.from_numpy(it["rgb"]).permute(2, 0, 1)[None].float() / 255.0
            x = ((x - mean) / std)[..., : h - h % 32, : w - w % 32].to(device)
            pred = net(x)[0, 0].cpu().numpy()
            g = it["depth_mm"][: pred.shape[0], : pred.shape[1]]
            v = it["valid"][: pred.shape[0], : pred.shape[1]]
            try:
                rows.append((depth_metrics(pred, g, v, cap_mm), depth_metrics(pred, g, v, cap_mm, median_scaled=True)))
            except InputError:
                continue
    net.train()
    if not rows:
        return {}
    return {"metric_abs_rel": float(np.mean([r[0]["abs_rel"] for r in rows])),
            "median_abs_rel": float(np.mean([r[1]["abs_rel"] for r in rows])),
            "median_delta1": float(np.mean([r[1]["delta1"] for r in rows]))}


def plot_curves(history: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    tr = history.get("train", [])
    if tr:
        steps = [r["step"] for r in tr]
        ax[0].plot(steps, [r["loss"] for r in tr], lw=0.8)
    ax[0].set_xlabel("step")
    ax[0].set_ylabel("training loss (SI-log + gradient)")
    ax[0].set_yscale("log")
    for key in ("val", "val_scenario"):
        rows = history.get(key, [])
        if rows:
            s = [r["step"] for r in rows]
            for m in ("median_abs_rel", "metric_abs_rel"):
                if m in rows[0]:
                    ax[1].plot(s, [r[m] for r in rows], marker="o", ms=3, label=f"{key} {m}")
    ax[1].set_xlabel("step")
    ax[1].set_ylabel("AbsRel")
    ax[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(str(path), dpi=100)
    plt.close(fig)


def train_depth_model(datasets: Sequence[str], output: str, config: TrainConfig | None = None,
                      resume: bool = False, val_scenario: str | None = None, overwrite: bool = False,
                      progress=None, cancel: CancelToken | None = None,
                      log: Callable[[str], None] = lambda m: None) -> Path:
    """Train on the ``train`` paths of ``datasets``; validate on their ``val`` paths (and ``val_scenario``,
    which is then excluded from training). Writes the model folder ``output`` at the end."""
    from SurgicalAICore.device import select_device

    cfg = (config or TrainConfig()).validate()
    out = Path(output)
    if out.exists() and not overwrite:
        raise InputError(f"Output model folder {out} already exists; choose another or allow overwriting.")
    if not datasets:
        raise InputError("Give at least one dataset folder.")
    if any(c % 32 for c in cfg.crop):
        raise InputError(f"Crop {cfg.crop} must be multiples of 32.")
    if not 0.0 <= cfg.augment_strength <= 1.0:
        raise InputError(f"Augmentation strength {cfg.augment_strength} must be between 0 and 1.")
    exclude = [val_scenario] if val_scenario else None
    train_parts = _collect(datasets, "train", exclude)
    if not train_parts:
        raise InputError("The datasets hold no training frame (split 'train').")
    train_frames = _Concat(train_parts)
    val_frames = _Concat(_collect(datasets, "val", exclude) or [])
    held_out = _Concat(_collect(datasets, None, only=[val_scenario])) if val_scenario else None
    if val_scenario and (held_out is None or len(held_out) == 0):
        raise InputError(f"No frame of held-out scenario '{val_scenario}' in the datasets.")
    camera = train_parts[0].camera
    work = out.with_name(out.name + ".checkpoints")
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, int(cfg.threads)))
    torch.manual_seed(cfg.seed)
    device = select_device(cfg.device)
    net = build_depth_network(cfg.hyper).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, history = 0, {"train": [], "val": [], "val_scenario": []}
    spent_minutes = 0.0  # training time of earlier runs (resume)
    ckpt_path = work / "last.pt"
    if resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        try:
            net.load_state_dict(ckpt["model"])
            opt.load_state_dict(ckpt["optimizer"])
        except (RuntimeError, ValueError) as error:
            raise ModelError(f"Checkpoint {ckpt_path} does not fit this configuration "
                             f"({str(error).splitlines()[0]}).") from None
        step = int(ckpt["step"])
        history = json.loads(ckpt.get("history", "{}")) or history
        spent_minutes = float(ckpt.get("minutes", 0.0))
        log(f"resumed from step {step}")
    samples = TrainingSamples(train_frames, tuple(cfg.crop), cfg.augment, cfg.seed, cfg.augment_strength)
    p = Progress.of(progress, cancel)
    t0 = time.time()
    rng = np.random.default_rng((cfg.seed, step))

    def minutes() -> float:
        return spent_minutes + (time.time() - t0) / 60.0

    net.train()

    def save_checkpoint():
        _atomic_torch_save({"model": net.state_dict(), "optimizer": opt.state_dict(), "step": step,
                            "config": json.dumps(asdict(cfg)), "history": json.dumps(history), "minutes": minutes()},
                           ckpt_path)

    running = None
    while step < cfg.steps:
        if cfg.max_minutes is not None and minutes() > cfg.max_minutes:
            log(f"time budget reached at step {step}")
            break
        if cfg.leg_minutes is not None and (time.time() - t0) / 60.0 > cfg.leg_minutes:
            log(f"leg time reached at step {step}; continue with --resume")
            break
        samples.epoch = step
        idx = rng.integers(0, len(samples), cfg.batch_size)
        batch = [samples[int(i)] for i in idx]
        x = torch.stack([b[0] for b in batch]).to(device)
        d = torch.stack([b[1] for b in batch]).to(device)
        v = torch.stack([b[2] for b in batch]).to(device)
        # cosine decay over steps, or over the time budget when that runs out first
        done = step / max(cfg.steps, 1)
        if cfg.max_minutes:
            done = max(done, minutes() / cfg.max_minutes)
        lr = cfg.lr * 0.5 * (1 + math.cos(math.pi * min(done, 1.0)))
        warm = min(1.0, (step + 1) / 50.0)
        for g in opt.param_groups:
            g["lr"] = lr * warm
        pred = net(x)
        loss = depth_loss(pred, d, v, cfg.silog_lambda, cfg.gradient_weight)
        if cfg.ssi_weight:
            loss = loss + cfg.ssi_weight * scale_shift_invariant_loss(pred, d, v)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        step += 1
        value = float(loss.detach())
        if not math.isfinite(value):
            raise ModelError(f"Training diverged at step {step} (loss {value}); lower the learning rate.")
        running = value if running is None else 0.95 * running + 0.05 * value
        history["train"].append({"step": step, "loss": value})
        p.step(step / cfg.steps, f"step {step} loss {running:.4f}")
        if step % cfg.val_every == 0 or step == cfg.steps:
            if len(val_frames):
                history["val"].append({"step": step, **_validate(net, val_frames, device, cfg.val_frames)})
                log(f"step {step} val {history['val'][-1]}")
            if held_out is not None:
                history["val_scenario"].append({"step": step, **_validate(net, held_out, device, cfg.val_frames)})
            plot_curves(history, work / "curves.png")
        if step % cfg.checkpoint_every == 0:
            save_checkpoint()
    save_checkpoint()
    if not history["val"] or history["val"][-1]["step"] != step:
        if len(val_frames):
            history["val"].append({"step": step, **_validate(net, val_frames, device, cfg.val_frames)})
    plot_curves(history, work / "curves.png")
    last_val = history["val"][-1] if history["val"] else {}
    training = {"datasets": [str(Path(dset).name) for dset in datasets], "steps": step, "batch_size": cfg.batch_size,
                "crop": list(cfg.crop), "lr": cfg.lr, "silog_lambda": cfg.silog_lambda,
                "gradient_weight": cfg.gradient_weight, "ssi_weight": cfg.ssi_weight,
                "train_frames": len(train_frames), "val_frames": len(val_frames),
                "held_out_scenario": val_scenario, "seed": cfg.seed,
                "minutes": round(minutes(), 1)}
    card = depth_card(out.name, net.cpu(), (camera.height, camera.width), training,
                      {"val_" + k: round(v, 4) for k, v in last_val.items() if k != "step"}, camera.to_dict())
    save_depth_model(out, net, card, overwrite=overwrite)
    (work / "history.json").write_text(json.dumps(history))
    return out
