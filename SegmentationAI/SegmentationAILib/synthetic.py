"""Synthetic data for tests and benchmarks: CT-like volumes with ellipsoid organs, and tiny untrained models."""

from __future__ import annotations

from pathlib import Path
from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

# (name, HU, centre as a fraction of the extent i, j, k, semi-axes as a fraction)
_ORGANS = [
    ("liver", 60.0, (0.32, 0.45, 0.55), (0.16, 0.14, 0.16)),
    ("spleen", 50.0, (0.72, 0.55, 0.58), (0.07, 0.08, 0.09)),
    ("kidney_right", 30.0, (0.35, 0.68, 0.40), (0.05, 0.06, 0.09)),
    ("kidney_left", 30.0, (0.65, 0.68, 0.40), (0.05, 0.06, 0.09)),
    ("vertebrae", 400.0, (0.50, 0.75, 0.50), (0.04, 0.05, 0.45)),
]


def synthetic_ct(
    size: Sequence[int] = (64, 64, 48),
    spacing: Sequence[float] = (3.0, 3.0, 3.0),
    seed: int = 0,
    noise_hu: float = 15.0,
) -> tuple[sitk.Image, sitk.Image]:
    """(CT image Int16 in HU, label image UInt8) of an elliptic body with ellipsoid organs; LPS identity axes.

    Labels follow the order of the organ list (1 liver, 2 spleen, 3 kidney_right, 4 kidney_left, 5 vertebrae).
    """
    rng = np.random.default_rng(seed)
    ni, nj, nk = (int(s) for s in size)
    k, j, i = np.meshgrid(
        np.linspace(0, 1, nk, dtype=np.float32),
        np.linspace(0, 1, nj, dtype=np.float32),
        np.linspace(0, 1, ni, dtype=np.float32),
        indexing="ij",
    )
    ct = np.full((nk, nj, ni), -1000.0, np.float32)
    body = ((i - 0.5) / 0.45) ** 2 + ((j - 0.5) / 0.35) ** 2 <= 1.0
    ct[body] = -80.0  # fat
    labels = np.zeros((nk, nj, ni), np.uint8)
    for value, (_, hu, centre, axes) in enumerate(_ORGANS, start=1):
        inside = (
            ((i - centre[0]) / axes[0]) ** 2 + ((j - centre[1]) / axes[1]) ** 2 + ((k - centre[2]) / axes[2]) ** 2
        ) <= 1.0
        ct[inside] = hu
        labels[inside] = value
    ct += rng.normal(0.0, noise_hu, ct.shape).astype(np.float32)
    ct_image = sitk.GetImageFromArray(np.round(ct).astype(np.int16))
    ct_image.SetSpacing([float(s) for s in spacing])
    label_image = sitk.GetImageFromArray(labels)
    label_image.CopyInformation(ct_image)
    return ct_image, label_image


def synthetic_labels() -> list[dict]:
    """Card labels matching :func:`synthetic_ct`."""
    colours = [(0.87, 0.51, 0.40), (0.62, 0.22, 0.42), (0.86, 0.44, 0.27), (0.72, 0.31, 0.21), (0.95, 0.92, 0.78)]
    return [
        {"value": n + 1, "name": name, "color": list(c)}
        for n, ((name, *_), c) in enumerate(zip(_ORGANS, colours, strict=False))
    ]


def tiny_card(
    labels: list[dict] | None = None,
    spacing: Sequence[float] = (3.0, 3.0, 3.0),
    patch: Sequence[int] = (32, 32, 32),
    channels: Sequence[int] = (4, 8, 16),
) -> dict:
    """A valid model card for a tiny UNet (tests, benchmarks of the pipeline)."""
    labels = labels if labels is not None else synthetic_labels()
    return {
        "name": "tiny-test-unet",
        "version": "0.0.1",
        "task": "segmentation",
        "modality": "CT",
        "channels": ["CT"],
        "labels": labels,
        "spacing": [float(s) for s in spacing],
        "patch_size": [int(p) for p in patch],
        "normalization": [{"type": "ct", "clip": [-1000.0, 1000.0], "mean": 0.0, "std": 300.0}],
        "architecture": {
            "name": "UNet",
            "spatial_dims": 3,
            "channels": list(channels),
            "strides": [2] * (len(channels) - 1),
            "num_res_units": 0,
            "norm": "instance",
            "dropout": 0.0,
        },
        "inference": {"overlap": 0.5, "blend": "gaussian", "tta": True, "tta_axes": [2]},
        "postprocessing": {"largest_component": True, "fill_holes": True},
        "description": "Untrained tiny network for tests; its output is meaningless.",
    }


def save_tiny_model(path: str | Path, seed: int = 0, **card_kwargs):
    """Write an untrained tiny model folder (deterministic weights) and return its ModelFolder."""
    import torch

    from SegmentationAILib.seg_model import build_network, save_segmentation_model

    card = tiny_card(**card_kwargs)
    torch.manual_seed(seed)
    return save_segmentation_model(path, build_network(card), card)
