"""The model card of a new model: labels, spacing, normalisation (from the labelled voxels) and architecture."""
from __future__ import annotations

import copy
from typing import Optional, Sequence

import numpy as np
import SimpleITK as sitk

from SegmentationAILib.cases import Case
from SurgicalAICore.errors import InputError
from SegmentationAILib.label_mapping import LabelMapping
from SegmentationAILib.training.settings import TrainingSettings


FOREGROUND_PERCENTILES = (0.5, 99.5)  # CT clip window taken from the labelled voxels (as nnU-Net does)


def _ct_normalization(cases: Sequence[Case], mapping: LabelMapping, channel: int = 0) -> dict:
    """Clip window and mean/std from labelled voxels of the training cases (a subsample)."""
    rng = np.random.default_rng(0)
    values = []
    for case in cases:
        image = sitk.GetArrayViewFromImage(case.images[channel])
        fg = mapping.apply(case) > 0
        v = np.asarray(image[fg], np.float32)
        if v.size > 20000:
            v = rng.choice(v, 20000, replace=False)
        values.append(v)
    v = np.concatenate(values) if values else np.zeros(1, np.float32)
    lo, hi = (float(x) for x in np.percentile(v, FOREGROUND_PERCENTILES))
    if hi <= lo:
        hi = lo + 1.0
    clipped = np.clip(v, lo, hi)
    return {"type": "ct", "clip": [round(lo, 2), round(hi, 2)], "mean": round(float(clipped.mean()), 4),
            "std": round(max(float(clipped.std()), 1e-3), 4)}


def build_card(settings: TrainingSettings, mapping: LabelMapping, train_cases: Sequence[Case],
               base_card: Optional[dict] = None) -> dict:
    """The model card of the run (without metrics). Fine-tuning keeps the base model's input side."""
    n_channels = len(train_cases[0].images)
    if base_card is not None:
        if len(base_card["channels"]) != n_channels:
            raise InputError(f"The model to fine-tune takes {len(base_card['channels'])} channel(s) "
                             f"({', '.join(base_card['channels'])}); the cases have {n_channels}.")
        card = {k: copy.deepcopy(base_card[k]) for k in ("modality", "channels", "spacing", "patch_size",
                                                          "normalization", "architecture")}
        for k in ("preprocessing", "postprocessing"):
            if k in base_card:
                card[k] = copy.deepcopy(base_card[k])
        post = card.get("postprocessing", {})
        if isinstance(post.get("largest_component"), list):
            post["largest_component"] = [n for n in post["largest_component"] if n in mapping.names]
    else:
        modality = settings.modality.upper()
        if modality not in ("CT", "MR"):
            raise InputError(f"Modality must be CT or MR; got '{settings.modality}'.")
        names = settings.channel_names or (["CT"] if modality == "CT" and n_channels == 1
                                           else [f"{modality}{i + 1}" for i in range(n_channels)])
        if len(names) != n_channels:
            raise InputError(f"{len(names)} channel name(s) given but the cases have {n_channels} channel(s).")
        spacing = settings.spacing or [float(x) for x in np.median([c.spacing for c in train_cases], axis=0)]
        if len(spacing) != 3 or min(spacing) <= 0:
            raise InputError(f"Spacing must be three positive numbers (mm); got {spacing}.")
        patch = [int(p) for p in settings.patch_size]
        down = 2 ** sum(1 for s in settings.unet_strides if s == 2)
        if len(patch) != 3 or any(p <= 0 or p % 16 or p % down for p in patch):
            raise InputError(f"Patch size {patch} must be three positive multiples of 16 (and of {down}).")
        if modality == "CT":
            norms = [_ct_normalization(train_cases, mapping, c) for c in range(n_channels)]
        else:
            norms = [{"type": "zscore_foreground"} for _ in range(n_channels)]
        card = {
            "modality": modality, "channels": list(names), "spacing": [round(float(s), 4) for s in spacing],
            "patch_size": patch, "normalization": norms,
            "architecture": {"name": "UNet", "spatial_dims": 3, "channels": list(settings.unet_channels),
                             "strides": list(settings.unet_strides), "num_res_units": int(settings.num_res_units),
                             "norm": settings.norm, "dropout": float(settings.dropout)},
        }
    flips = sorted(settings.augmentation.flip_axes) if settings.augmentation.flip_prob > 0 else []
    # test-time flips only along axes the network saw flipped (a left/right model must not be mirrored)
    card["inference"] = {"overlap": 0.5, "blend": "gaussian", "tta": bool(flips), "tta_axes": flips or [0, 1, 2]}
    if settings.largest_component:
        wanted = list(mapping.names) if settings.largest_component == ["all"] else list(settings.largest_component)
        unknown = [n for n in wanted if n not in mapping.names]
        if unknown:
            raise InputError(f"--largest-component names {', '.join(unknown)}, not a class of this training "
                             f"({', '.join(mapping.names)}).")
        card.setdefault("postprocessing", {})["largest_component"] = wanted
    card["labels"] = mapping.card_labels()
    card["task"] = "segmentation"
    card["name"] = settings.name or "trained-unet"
    card["version"] = "1.0"
    card["description"] = settings.description or (
        f"U-Net trained with SlicerSurgicalAI on {len(train_cases)} case(s) for {', '.join(mapping.names)}.")
    return card
