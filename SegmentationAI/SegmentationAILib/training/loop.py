"""Training and fine-tuning of segmentation U-Nets on labelled cases.

One run lives in a work folder ``<output>.training/`` beside the output model folder: a checkpoint
written atomically after every epoch (model, optimiser, scheduler, AMP scaler, RNG states, epoch,
step, history), the best weights by validation Dice, ``metrics.json`` and ``curves.png``. A run
killed at any moment resumes from its last checkpoint (``resume=True``) and continues exactly as an
uninterrupted run would: patches, augmentation and dropout of step ``s`` are drawn from RNGs
seeded by ``(seed, rank, s)``, so they do not depend on what happened before the restart. The
model folder ``<output>`` is written only at the end (atomically, never over an existing folder).
"""
from __future__ import annotations

import copy
import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import SimpleITK as sitk
import torch

import SegmentationAILib.training.distributed as dist_utils
from SegmentationAILib.cases import Case
from SurgicalAICore.atomic import atomic_dir, write_atomic, write_json_atomic
from SurgicalAICore.errors import InputError, ModelError, OperationCancelled
from SegmentationAILib.label_mapping import LabelMapping, check_mapping
from SurgicalAICore.progress import CancelToken, Progress, ProgressCallback
from SegmentationAILib.training.transforms import training_transforms
from SegmentationAILib.training.settings import TrainingResult, TrainingSettings
from SegmentationAILib.training.card import build_card
from SegmentationAILib.training.curves import write_curves
from SurgicalAICore.checkpoint import rng_state as _rng_state, set_rng_state as _set_rng_state, step_seed as _step_seed

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
METRICS = "metrics.json"
CURVES = "curves.png"






# --------------------------------------------------------------------------- splits

def split_cases(names: Sequence[str], val_fraction: float = 0.2, folds: int = 0, fold: int = 0,
                seed: int = 0) -> Tuple[List[int], List[int]]:
    """(train indices, validation indices). k-fold folds are disjoint and cover every case once."""
    n = len(names)
    order = list(np.random.default_rng(seed).permutation(n))
    if folds and folds >= 2:
        if n < folds:
            raise InputError(f"{folds}-fold cross-validation needs at least {folds} cases; got {n}.")
        if not 0 <= fold < folds:
            raise InputError(f"Fold {fold} does not exist in {folds}-fold cross-validation (0..{folds - 1}).")
        parts = np.array_split(np.array(order), folds)
        val = sorted(int(i) for i in parts[fold])
        return sorted(set(range(n)) - set(val)), val
    if folds == 1 or folds < 0:
        raise InputError("k-fold cross-validation needs at least 2 folds.")
    if not 0 <= val_fraction < 1:
        raise InputError(f"The validation fraction must be in [0, 1); got {val_fraction}.")
    n_val = int(round(n * val_fraction))
    if val_fraction > 0 and n_val == 0 and n >= 2:
        n_val = 1
    if n - n_val < 1:
        raise InputError(f"Only {n} case(s): none would be left for training.")
    val = sorted(int(i) for i in order[:n_val])
    return sorted(set(range(n)) - set(val)), val


# --------------------------------------------------------------------------- card and data





@dataclass
class PreparedCase:
    name: str
    data: dict  # image [c,k,j,i] float32, label [1,k,j,i] uint8, fg/bg indices


def prepare_case(case: Case, mapping: LabelMapping, card: dict, patch_kji: Optional[Sequence[int]] = None,
                 class_balanced: bool = False) -> PreparedCase:
    """Resample and normalise a case onto the model grid (the inference's own preprocessing),
    pad it to at least one patch and precompute the voxel indices the patch sampler draws from
    (foreground/background, or per class when ``class_balanced``)."""
    from monai.transforms import ClassesToIndicesd, FgBgToIndicesd, SpatialPadd

    from SegmentationAILib.preprocessing import prepare_input, resample_like

    image, grid = prepare_input(case.images, card)
    label = sitk.GetArrayFromImage(resample_like(mapping.apply_image(case), grid, sitk.sitkNearestNeighbor))
    data = {"image": image, "label": label[None].astype(np.uint8)}
    if patch_kji is not None:
        data = SpatialPadd(["image", "label"], spatial_size=list(patch_kji), mode="constant")(data)
        data = {k: np.asarray(v) for k, v in data.items()}
        if class_balanced:
            data = ClassesToIndicesd("label", num_classes=len(card["labels"]) + 1)(data)
        else:
            data = FgBgToIndicesd("label")(data)
    return PreparedCase(case.name, data)


# --------------------------------------------------------------------------- small utilities







def _lr_lambda(schedule: str, total: int, warmup: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        t = min(step / max(total, 1), 1.0)
        if schedule == "poly":
            return (1 - t) ** 0.9
        if schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * t))
        return 1.0
    return f




def dice_per_class(pred: np.ndarray, ref: np.ndarray, n_classes: int) -> List[float]:
    """Dice of classes 1..n_classes (NaN where both are empty)."""
    out = []
    for c in range(1, n_classes + 1):
        p, r = pred == c, ref == c
        denom = int(p.sum()) + int(r.sum())
        out.append(float("nan") if denom == 0 else 2.0 * float(np.logical_and(p, r).sum()) / denom)
    return out


def predict_prepared(network: torch.nn.Module, image: np.ndarray, patch_kji: Sequence[int], device: torch.device,
                     overlap: float = 0.25, amp: bool = False) -> np.ndarray:
    """Arg-max class map of a preprocessed ``[c, k, j, i]`` image (sliding window, Gaussian blending)."""
    from monai.inferers import sliding_window_inference

    network.eval()
    x = torch.from_numpy(np.ascontiguousarray(image))[None].to(device)
    with torch.no_grad(), torch.autocast(device.type, enabled=amp and device.type == "cuda"):
        logits = sliding_window_inference(x, list(patch_kji), 4, network, overlap=overlap, mode="gaussian")
    return logits.argmax(1)[0].cpu().numpy().astype(np.uint8)


# --------------------------------------------------------------------------- the run

def _check_output(output: Path, work: Path, resume: bool) -> None:
    if output.exists():
        raise InputError(f"Output model folder {output} already exists; choose another name or remove it "
                         f"(it is never overwritten).")
    parent = output.parent
    probe = parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(f"Cannot write the output under {probe}: it is a file, not a folder.")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"Cannot write to {probe}: choose an output folder you may write to.")
    if resume and not (work / CHECKPOINT).is_file():
        raise InputError(f"Nothing to resume: {work / CHECKPOINT} does not exist.")
    if not resume and work.exists() and any(work.iterdir()):
        raise InputError(f"A training run is already in {work}; resume it (--resume) or remove that folder.")


def load_checkpoint(path: Path) -> dict:
    """A checkpoint written by :func:`train` (tensors only, read with ``weights_only``)."""
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:
        first = (str(error).strip().splitlines() or ["unreadable"])[0][:120]
        raise ModelError(f"Checkpoint {path} is corrupt or unreadable ({first}); remove the run folder "
                         f"to start again.") from None
    needed = {"model", "optimizer", "scheduler", "epoch", "step", "rng", "settings", "card", "history"}
    if not isinstance(ckpt, dict) or needed - set(ckpt):
        raise ModelError(f"Checkpoint {path} is incomplete (missing {', '.join(sorted(needed - set(ckpt or {})))}).")
    return ckpt


def _finetune_network(network: torch.nn.Module, base_state: Dict[str, torch.Tensor]) -> List[str]:
    """Copy every base weight whose shape fits; the rest (the output head for a new label set) stays fresh."""
    own = network.state_dict()
    fresh = [k for k in own if k not in base_state or base_state[k].shape != own[k].shape]
    own.update({k: v for k, v in base_state.items() if k in own and v.shape == own[k].shape})
    network.load_state_dict(own)
    return fresh


@dataclass
class _Run:
    """One training run's state between its phases."""
    settings: TrainingSettings
    mapping: LabelMapping
    work: Path
    card: dict
    train_set: List[Case]
    val_set: List[Case]
    ctx: "dist_utils.DistContext"
    device: torch.device
    use_amp: bool
    network: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: "torch.optim.lr_scheduler.LambdaLR"
    scaler: "torch.amp.GradScaler"
    fresh: List[str]
    history: List[dict] = field(default_factory=list)
    best: dict = field(default_factory=lambda: {"epoch": 0, "dice": None})
    start_epoch: int = 0

    @property
    def patch_kji(self) -> List[int]:
        return list(self.card["patch_size"])[::-1]

    @property
    def total_steps(self) -> int:
        return self.settings.epochs * self.settings.steps_per_epoch


def _resumed_settings(settings: TrainingSettings, work: Path, resume: bool) -> Tuple[TrainingSettings, Optional[dict]]:
    if not resume:
        return settings, None
    ckpt = load_checkpoint(work / CHECKPOINT)
    stored = TrainingSettings.from_dict(ckpt["settings"])
    stored.epochs = max(stored.epochs, settings.epochs)
    return stored, ckpt


def _split_sets(cases, val_cases, mapping, settings) -> Tuple[List[Case], List[Case]]:
    if not cases:
        raise InputError("No training cases were given.")
    report = check_mapping(mapping, list(cases) + list(val_cases or []))
    for problem in report.problems:
        log.warning(problem)
    if val_cases:
        train_set, val_set = list(cases), list(val_cases)
    else:
        tr, va = split_cases([c.name for c in cases], settings.val_fraction, settings.folds, settings.fold,
                             settings.seed)
        train_set, val_set = [cases[i] for i in tr], [cases[i] for i in va]
    if len({len(c.images) for c in train_set + val_set}) > 1:
        raise InputError("All cases need the same number of image channels.")
    return train_set, val_set


def _base_model(init_model) -> Tuple[Optional[dict], Optional[Dict[str, torch.Tensor]]]:
    """Card and weights of the model to fine-tune from (None, None: train from scratch)."""
    from SegmentationAILib.seg_model import load_segmentation_model

    if init_model is None:
        return None, None
    base = load_segmentation_model(init_model, device="cpu")
    if base.network.__class__.__name__ != "UNet" or base.card.get("weights_format") == "torchscript":
        raise ModelError(f"Model {init_model} is TorchScript; fine-tuning needs a state-dict UNet model folder.")
    return base.card, base.network.state_dict()


def _run_card(ckpt, settings, mapping, train_set, base_card, work) -> dict:
    from SegmentationAILib.seg_model import validate_seg_card

    card = ckpt["card"] if ckpt is not None else build_card(settings, mapping, train_set, base_card)
    if ckpt is not None and [lab["name"] for lab in card["labels"]] != mapping.names:
        raise InputError(f"The run in {work} trains classes {[lab['name'] for lab in card['labels']]}, "
                         f"not {mapping.names}; use the same label mapping to resume.")
    validate_seg_card({**card, "format_version": 1, "weights": "model.pt", "weights_format": "state_dict"},
                      "the new model card")
    return card


def _start_run(settings, mapping, work, card, train_set, val_set, base_state, init_model, ckpt) -> _Run:
    """Network, optimiser, scheduler and scaler on the device; restored from ``ckpt`` when resuming."""
    from SegmentationAILib.seg_model import build_network
    from SurgicalAICore.device import select_device

    ctx = dist_utils.init_distributed(select_device(settings.device).type)
    device = dist_utils.device_for(ctx, select_device(settings.device))
    torch.manual_seed(settings.seed)
    network = build_network(card)
    fresh: List[str] = []
    if base_state is not None:
        fresh = _finetune_network(network, base_state)
        log.info("Fine-tuning from %s; %d tensors start fresh (new output head).", init_model, len(fresh))
    network.to(device)
    optimizer = torch.optim.AdamW(network.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    total_steps = settings.epochs * settings.steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(settings.schedule, total_steps,
                                                                        settings.warmup_steps))
    use_amp = settings.amp and device.type == "cuda"
    run = _Run(settings, mapping, work, card, train_set, val_set, ctx, device, use_amp, network, optimizer,
               scheduler, torch.amp.GradScaler("cuda", enabled=use_amp), fresh)
    if ckpt is not None:
        network.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scheduler.lr_lambdas[0] = _lr_lambda(settings.schedule, total_steps, settings.warmup_steps)
        if ckpt.get("scaler"):
            run.scaler.load_state_dict(ckpt["scaler"])
        _set_rng_state(ckpt["rng"])
        run.history = list(ckpt["history"])
        run.best = dict(ckpt.get("best", run.best))
        run.start_epoch = int(ckpt["epoch"])
    return run


def _prepare_cases(run: _Run, prog: Progress) -> Tuple[list, list]:
    n = max(len(run.train_set) + len(run.val_set), 1)
    prepared, val_prepared = [], []
    for i, case in enumerate(run.train_set):
        prog.step(i / n, f"preparing {case.name}")
        prepared.append(prepare_case(case, run.mapping, run.card, run.patch_kji,
                                     run.settings.augmentation.class_balanced))
    if run.ctx.is_main:
        for i, case in enumerate(run.val_set):
            prog.step((len(run.train_set) + i) / n, f"preparing {case.name}")
            val_prepared.append(prepare_case(case, run.mapping, run.card))
    return prepared, val_prepared


def _batch_sampler(run: _Run, prepared: list) -> Callable[[int], Tuple[torch.Tensor, torch.Tensor]]:
    """Step ``s``'s batch, drawn from RNGs seeded by (seed, rank, s) only: a resumed run draws the same."""
    transforms = training_transforms(run.patch_kji, run.settings.augmentation, len(run.card["labels"]))
    fg_key = "label_fg_indices"

    def sample_batch(step: int) -> Tuple[torch.Tensor, torch.Tensor]:
        s = _step_seed(run.settings.seed, run.ctx.rank, step)
        rng = np.random.default_rng(s)
        transforms.set_random_state(seed=s % (2 ** 32))
        images, labels = [], []
        for idx in rng.integers(0, len(prepared), run.settings.batch_size):
            data = prepared[int(idx)].data
            if fg_key in data and len(data[fg_key]) == 0:  # no foreground left on this case's grid: sample anywhere
                data = {**data, fg_key: data["label_bg_indices"]}
            for patch in transforms(dict(data)):
                images.append(torch.as_tensor(patch["image"]))
                labels.append(torch.as_tensor(patch["label"]))
        torch.manual_seed(s)  # dropout of this step
        return torch.stack(images).float(), torch.stack(labels).long()

    return sample_batch


def _train_steps(run: _Run, model, loss_fn, sample_batch, step: int, stop_at: int, epoch: int,
                 prog: Progress) -> Tuple[int, List[float]]:
    """The optimisation steps of one epoch (fewer when ``stop_at`` comes first)."""
    losses: List[float] = []
    model.train()
    for _ in range(run.settings.steps_per_epoch):
        if step >= stop_at:
            break
        x, y = sample_batch(step)
        x, y = x.to(run.device), y.to(run.device)
        run.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(run.device.type, enabled=run.use_amp):
            loss = loss_fn(model(x), y)
        if not torch.isfinite(loss):
            raise InputError(f"The training loss became {loss.item()} at step {step}; lower the learning rate.")
        run.scaler.scale(loss).backward()
        run.scaler.step(run.optimizer)
        run.scaler.update()
        run.scheduler.step()
        step += 1
        losses.append(float(loss.item()))
        prog.step(step / max(run.total_steps, 1),
                  f"epoch {epoch + 1}/{run.settings.epochs} step {step}/{run.total_steps} loss {losses[-1]:.3f}")
    return step, losses


def _validate(run: _Run, val_prepared: list, record: dict) -> bool:
    """Validation Dice into ``record``; True when these weights are the best so far."""
    if not val_prepared:
        return True  # without validation the latest weights are kept
    dices = []
    for vp in val_prepared:
        pred = predict_prepared(run.network, vp.data["image"], run.patch_kji, run.device, run.settings.val_overlap,
                                run.use_amp)
        dices.append(dice_per_class(pred, vp.data["label"][0], len(run.card["labels"])))
    per_class = np.nanmean(np.array(dices, float), axis=0) if dices else []
    record["val_dice"] = {n: (None if np.isnan(d) else round(float(d), 4)) for n, d in zip(run.mapping.names, per_class)}
    record["val_mean_dice"] = round(float(np.nanmean(per_class)), 4)
    return run.best["dice"] is None or record["val_mean_dice"] > run.best["dice"]


def _save_epoch(run: _Run, record: dict, improved: bool, step: int) -> None:
    """History, best weights, the resumable checkpoint, metrics and curves, each written atomically."""
    work, network = run.work, run.network
    run.history.append(record)
    if improved:
        run.best = {"epoch": record["epoch"], "dice": record.get("val_mean_dice")}
        write_atomic(work / BEST, lambda p: torch.save(network.state_dict(), str(p)))
    state = {"model": network.state_dict(), "optimizer": run.optimizer.state_dict(),
             "scheduler": run.scheduler.state_dict(), "scaler": run.scaler.state_dict() if run.use_amp else {},
             "epoch": record["epoch"], "step": step, "rng": _rng_state(), "settings": run.settings.to_dict(),
             "card": run.card, "history": run.history, "best": run.best,
             "mapping": json.dumps(run.mapping.to_list())}
    write_atomic(work / CHECKPOINT, lambda p: torch.save(state, str(p)))
    write_json_atomic(work / METRICS, {"classes": run.mapping.names, "epochs": run.history,
                                       "best_epoch": run.best["epoch"], "best_val_mean_dice": run.best["dice"],
                                       "train_cases": [c.name for c in run.train_set],
                                       "val_cases": [c.name for c in run.val_set]})
    write_curves(run.history, work / CURVES, run.mapping.names)


def _publish_model(run: _Run, output: Path, init_model, step: int, seconds: float) -> dict:
    """The best weights as the model folder ``output``, with its card (training record and metrics)."""
    from SegmentationAILib.seg_model import save_segmentation_model

    run.network.load_state_dict(torch.load(str(run.work / BEST), map_location="cpu", weights_only=True))
    settings, best = run.settings, run.best
    final = dict(run.card)
    final["training"] = {
        "train_cases": [c.name for c in run.train_set], "val_cases": [c.name for c in run.val_set],
        "data": sorted({c.source for c in run.train_set}), "label_mapping": run.mapping.to_list(),
        "settings": settings.to_dict(), "command": settings.command, "seed": settings.seed,
        "finetuned_from": str(init_model) if init_model else None, "fresh_tensors": run.fresh[:20],
        "steps": step, "wall_time_s": round(seconds, 1), "world_size": run.ctx.world_size,
    }
    final["metrics"] = {"best_epoch": best["epoch"], "validation_mean_dice": best["dice"],
                        "validation_dice": next((h.get("val_dice") for h in run.history
                                                 if h["epoch"] == best["epoch"]), None),
                        "note": "Dice on the validation cases at the model spacing"}
    # metrics and curves go in before the folder is moved into place: an interrupt never leaves a model
    # folder without them (they used to be copied into the published folder afterwards)
    with atomic_dir(output) as tmp:
        save_segmentation_model(tmp, run.network.cpu(), final, overwrite=True)
        for extra in (METRICS, CURVES):
            if (run.work / extra).is_file():
                shutil.copy2(run.work / extra, tmp / extra)
    return final


def train(cases: Sequence[Case], mapping: LabelMapping, output: Union[str, Path],
          settings: Optional[TrainingSettings] = None, val_cases: Optional[Sequence[Case]] = None,
          init_model: Union[str, Path, None] = None, resume: bool = False,
          progress: "Optional[ProgressCallback | Progress]" = None, cancel: Optional[CancelToken] = None,
          on_epoch: Optional[Callable[[dict], None]] = None, max_steps: Optional[int] = None) -> TrainingResult:
    """Train (or fine-tune from ``init_model``) a U-Net; write the model folder ``output``.

    Args:
        cases: labelled training cases (and validation ones, split by ``settings`` unless ``val_cases``).
        mapping: label values -> class names of the model.
        output: the model folder to write (at the end, atomically); the run lives in ``<output>.training``.
        settings: the run's settings; when resuming, the stored ones win (``epochs`` may grow).
        init_model: a model folder to fine-tune from.
        resume: continue the run in ``<output>.training``.
        on_epoch: called with each epoch's record.
        max_steps: stop early without writing the model folder (to test resuming).

    Raises:
        InputError, ModelError: bad input; OperationCancelled on cancel (the last checkpoint stays, so the
        run can be resumed).
    """
    from monai.losses import DiceCELoss

    settings = (settings or TrainingSettings()).validate()
    output = Path(output)
    work = Path(str(output) + ".training")
    _check_output(output, work, resume)
    prog = Progress.of(progress, cancel)
    settings, ckpt = _resumed_settings(settings, work, resume)
    if settings.threads:
        torch.set_num_threads(int(settings.threads))
    train_set, val_set = _split_sets(cases, val_cases, mapping, settings)
    base_card, base_state = _base_model(init_model) if ckpt is None else (None, None)
    card = _run_card(ckpt, settings, mapping, train_set, base_card, work)
    run = _start_run(settings, mapping, work, card, train_set, val_set, base_state, init_model, ckpt)
    model = dist_utils.wrap_model(run.ctx, run.network, run.device)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=True)
    if run.ctx.is_main:
        work.mkdir(parents=True, exist_ok=True)
    prepared, val_prepared = _prepare_cases(run, prog.sub(0.0, 0.1))
    sample_batch = _batch_sampler(run, prepared)
    run_prog = prog.sub(0.1, 1.0)
    step = run.start_epoch * settings.steps_per_epoch
    stop_at = run.total_steps if max_steps is None else min(run.total_steps, max_steps)
    t_run = time.time()
    try:
        for epoch in range(run.start_epoch, settings.epochs):
            t0 = time.time()
            step, losses = _train_steps(run, model, loss_fn, sample_batch, step, stop_at, epoch, run_prog)
            if step >= stop_at and len(losses) < settings.steps_per_epoch:
                break  # stopped mid-epoch (max_steps): keep the last full-epoch checkpoint
            record = {"epoch": epoch + 1, "step": step,
                      "train_loss": float(np.mean(losses)) if losses else float("nan"),
                      "lr": float(run.optimizer.param_groups[0]["lr"]), "time_s": round(time.time() - t0, 2)}
            if run.ctx.is_main:
                _save_epoch(run, record, _validate(run, val_prepared, record), step)
                if on_epoch is not None:
                    on_epoch(dict(record))
            dist_utils.barrier(run.ctx)
            if step >= stop_at:
                break
    except OperationCancelled:
        raise OperationCancelled(f"Training cancelled; the last finished epoch is saved in {work} "
                                 f"(resume it, or remove that folder).") from None
    model_path = None
    if run.ctx.is_main and step >= run.total_steps:
        card = _publish_model(run, output, init_model, step, time.time() - t_run)
        model_path = output
    dist_utils.barrier(run.ctx)
    return TrainingResult(model_path, work, run.history, run.best["epoch"], run.best["dice"], card, run.network)


def train_folds(cases: Sequence[Case], mapping: LabelMapping, output: Union[str, Path],
                settings: TrainingSettings, **kwargs) -> List[TrainingResult]:
    """k-fold cross-validation: one model folder per fold, ``<output>/fold_<i>`` (an ensemble at inference)."""
    if settings.folds < 2:
        raise InputError("train_folds needs settings.folds >= 2.")
    split_cases([c.name for c in cases], folds=settings.folds, fold=0)  # checks there are enough cases
    output = Path(output)
    if output.exists() and not kwargs.get("resume"):
        raise InputError(f"Output folder {output} already exists; choose another name or remove it.")
    results = []
    prog = Progress.of(kwargs.pop("progress", None), kwargs.pop("cancel", None))
    for fold in range(settings.folds):
        s = copy.deepcopy(settings)
        s.fold = fold
        s.name = f"{settings.name or 'trained-unet'}-fold{fold}"
        results.append(train(cases, mapping, output / f"fold_{fold}", s,
                             progress=prog.sub(fold / settings.folds, (fold + 1) / settings.folds), **kwargs))
    return results


