"""Network inference: MONAI sliding-window with Gaussian blending, mirror test-time augmentation,
and ensembles (several models' softmax probabilities averaged).

Arrays are ``[c, k, j, i]``; the model card's ``patch_size`` and ``tta_axes`` are along i, j, k,
so they are reversed here to match the array order.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from SurgicalAICore.device import run_with_cpu_fallback
from SurgicalAICore.errors import InputError
from SurgicalAICore.progress import CancelToken, Progress, ProgressCallback
from SegmentationAILib.seg_model import SegmentationModel


def flip_sets(axes_ijk: Sequence[int]) -> list[tuple[int, ...]]:
    """Every combination of flips over the given i/j/k axes (incl. no flip), as tensor dims of [n, c, k, j, i]."""
    dims = sorted({4 - int(a) for a in axes_ijk})  # i -> dim 4, j -> 3, k -> 2
    out: list[tuple[int, ...]] = []
    for r in range(len(dims) + 1):
        out.extend(itertools.combinations(dims, r))
    return out


def count_windows(shape_kji: Sequence[int], roi_kji: Sequence[int], overlap: float) -> int:
    """Number of sliding windows MONAI will run (for progress reporting)."""
    n = 1
    for size, roi in zip(shape_kji, roi_kji, strict=False):
        if size <= roi:
            continue
        interval = max(int(roi * (1 - overlap)), 1)
        n *= math.ceil((size - roi) / interval) + 1
    return n


def pad_with_minimum(image: np.ndarray, roi_kji: Sequence[int]) -> tuple[np.ndarray, tuple[slice, ...]]:
    """``image`` padded up to the window on each side with each channel's minimum, and the crop back.

    Sliding windows pad a short input with zeros, which after normalisation is average soft tissue; a
    20-slice scan then looks like a body continuing in grey. The minimum (air for CT, background for MR)
    is what lies beyond a real scan's edge.
    """
    pads = [max(r - n, 0) for r, n in zip(roi_kji, image.shape[1:], strict=True)]
    if not any(pads):
        return image, (slice(None),) * 3
    widths = [(p // 2, p - p // 2) for p in pads]
    out = np.empty((image.shape[0], *(n + p for n, p in zip(image.shape[1:], pads, strict=True))), np.float32)
    for c in range(image.shape[0]):
        out[c] = np.pad(image[c], widths, constant_values=float(image[c].min()))
    return out, tuple(slice(a, a + n) for (a, _), n in zip(widths, image.shape[1:], strict=True))


def _patch_kji(model: SegmentationModel) -> tuple[int, int, int]:
    i, j, k = model.card["patch_size"]
    return (int(k), int(j), int(i))


def predict_probabilities(models: SegmentationModel | list[SegmentationModel], image: np.ndarray,
                          tta: bool = True, progress: ProgressCallback | Progress | None = None,
                          cancel: CancelToken | None = None, overlap: float | None = None,
                          blend: str | None = None, tta_axes: Sequence[int] | None = None,
                          notify: Callable[[str], None] | None = None) -> np.ndarray:
    """Softmax probabilities ``[classes, k, j, i]`` (float32) averaged over models and TTA flips.

    ``image`` is the preprocessed network input ``[c, k, j, i]``. Settings not given come from the
    first model's card (overlap 0.5, Gaussian blending, flips over ``tta_axes``). On a CUDA
    out-of-memory error the whole prediction is run again on the CPU and ``notify`` is told.
    """
    from monai.inferers import sliding_window_inference

    models = [models] if isinstance(models, SegmentationModel) else list(models)
    if not models:
        raise InputError("No model was given.")
    classes = {m.num_classes for m in models}
    if len(classes) != 1:
        raise InputError("The models of an ensemble must have the same labels.")
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 4 or image.shape[0] != len(models[0].card["channels"]):
        raise InputError(f"Expected a preprocessed [c, k, j, i] array with {len(models[0].card['channels'])} "
                         f"channel(s), got shape {image.shape}.")
    card_inf = models[0].card.get("inference", {})
    overlap = float(card_inf.get("overlap", 0.5) if overlap is None else overlap)
    mode = str(card_inf.get("blend", "gaussian") if blend is None else blend)
    axes = card_inf.get("tta_axes", [0, 1, 2]) if tta_axes is None else tta_axes
    flips = flip_sets(axes) if tta else [()]
    roi = _patch_kji(models[0])
    crop = (slice(None),) * 3
    if card_inf.get("pad") == "minimum":
        image, crop = pad_with_minimum(image, roi)
    total = len(models) * len(flips) * count_windows(image.shape[1:], roi, overlap)
    prog = Progress.of(progress, cancel)

    def run(device: torch.device) -> np.ndarray:
        done = [0]
        x = torch.from_numpy(image)[None]
        acc = torch.zeros((models[0].num_classes, *tuple(image.shape[1:])), dtype=torch.float32)
        for model in models:
            network = model.network.to(device)

            def predictor(batch: torch.Tensor) -> torch.Tensor:
                prog.step(min(done[0] / max(total, 1), 1.0), "running the network")
                out = network(batch)  # noqa: B023 (used by this iteration's inference only)
                done[0] += batch.shape[0]
                return out

            for dims in flips:
                xin = torch.flip(x, dims) if dims else x
                with torch.no_grad():
                    logits = sliding_window_inference(xin, roi, sw_batch_size=1, predictor=predictor,
                                                      overlap=overlap, mode=mode, sw_device=device,
                                                      device=torch.device("cpu"))
                    probs = torch.softmax(logits.float(), dim=1)
                    if dims:
                        probs = torch.flip(probs, dims)
                acc += probs[0]
        return (acc / (len(models) * len(flips))).numpy()

    probs = run_with_cpu_fallback(run, models[0].device, notify)
    prog.step(1.0, "network done")
    return np.ascontiguousarray(probs[(slice(None), *crop)])
