"""Training-time patch sampling and augmentation (MONAI dictionary transforms).

Resampling to the model spacing and intensity normalisation are done once per case by
:func:`preprocessing.prepare_input` (the same code the inference runs), so the transforms here
only pick patches and augment. Arrays are ``[c, k, j, i]``; flip axes are named as in the model
card (0 = i, 1 = j, 2 = k).

Defaults (:class:`AugmentationSettings`), chosen for small data on a CPU:

================  ======================================================================
patch sampling    ``RandCropByPosNegLabeld``: 2 of 3 patches centred on a labelled voxel
                  (foreground oversampling), 1 of 3 anywhere; 2 patches per case drawn.
                  ``class_balanced``: ``RandCropByLabelClassesd`` instead, the foreground share
                  split equally between the classes (small organs get as many patches as big ones)
affine            p=0.3: rotation ±15° about each axis, scaling ±10 %
elastic           p=0.0 (off: slow on CPU; ``elastic_prob`` turns ``Rand3DElasticd`` on,
                  sigma 5-8 voxels, magnitude 50-150)
flips             p=0.5 per axis in ``flip_axes`` (default i, j, k; leave out i when the
                  classes have a side, e.g. left/right parotid)
gamma             p=0.3: ``RandAdjustContrastd`` gamma 0.7-1.5
contrast/scale    p=0.3: ``RandScaleIntensityd`` ±10 %, ``RandShiftIntensityd`` ±0.1
noise             p=0.2: ``RandGaussianNoised`` sd 0.05
================  ======================================================================
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import List, Sequence

import monai.transforms as mt


@dataclass
class AugmentationSettings:
    """Patch sampling and augmentation settings (see the module docstring for what each does)."""

    pos_fraction: float = 2.0 / 3.0
    samples_per_case: int = 2
    class_balanced: bool = False
    affine_prob: float = 0.3
    rotate_deg: float = 15.0
    scale: float = 0.10
    elastic_prob: float = 0.0
    flip_prob: float = 0.5
    flip_axes: List[int] = field(default_factory=lambda: [0, 1, 2])
    gamma_prob: float = 0.3
    gamma_range: Sequence[float] = (0.7, 1.5)
    intensity_prob: float = 0.3
    noise_prob: float = 0.2
    noise_std: float = 0.05

    def to_dict(self) -> dict:
        d = asdict(self)
        d["gamma_range"] = list(self.gamma_range)
        return d

    @classmethod
    def none(cls) -> "AugmentationSettings":
        """Patch sampling only (for tests and exact comparisons)."""
        return cls(affine_prob=0.0, elastic_prob=0.0, flip_prob=0.0, gamma_prob=0.0, intensity_prob=0.0, noise_prob=0.0)


def training_transforms(patch_kji: Sequence[int], aug: AugmentationSettings, num_classes: int = 1) -> mt.Compose:
    """Patch sampling + augmentation for dicts ``{"image": [c,k,j,i], "label": [1,k,j,i]}`` holding
    precomputed voxel indices (``label_fg_indices``/``label_bg_indices``, or ``label_cls_indices``
    when class-balanced; see :func:`training.prepare_case`). ``num_classes`` excludes background.

    The result of calling it is a list of ``aug.samples_per_case`` patch dicts."""
    keys = ["image", "label"]
    patch = [int(p) for p in patch_kji]
    pos = max(aug.pos_fraction, 1e-3)
    neg = max(1.0 - aug.pos_fraction, 0.0)
    t: list = [
    ]
    if aug.class_balanced:
        ratios = [neg] + [pos / num_classes] * num_classes
        t.append(mt.RandCropByLabelClassesd(keys, label_key="label", spatial_size=patch, ratios=ratios,
                                            num_classes=num_classes + 1, num_samples=aug.samples_per_case,
                                            indices_key="label_cls_indices", warn=False))
    else:
        t.append(mt.RandCropByPosNegLabeld(keys, label_key="label", spatial_size=patch, pos=pos, neg=neg,
                                           num_samples=aug.samples_per_case, image_key=None, allow_smaller=False,
                                           fg_indices_key="label_fg_indices", bg_indices_key="label_bg_indices"))
    if aug.affine_prob > 0:
        r = math.radians(aug.rotate_deg)
        t.append(mt.RandAffined(keys, prob=aug.affine_prob, rotate_range=(r, r, r), scale_range=(aug.scale,) * 3,
                                mode=("bilinear", "nearest"), padding_mode="border"))
    if aug.elastic_prob > 0:
        t.append(mt.Rand3DElasticd(keys, sigma_range=(5, 8), magnitude_range=(50, 150), prob=aug.elastic_prob,
                                   mode=("bilinear", "nearest"), padding_mode="border"))
    if aug.flip_prob > 0:
        for axis in aug.flip_axes:  # card axis i/j/k -> array axis k/j/i (channel excluded)
            t.append(mt.RandFlipd(keys, prob=aug.flip_prob, spatial_axis=2 - int(axis)))
    if aug.gamma_prob > 0:
        t.append(mt.RandAdjustContrastd(["image"], prob=aug.gamma_prob, gamma=tuple(aug.gamma_range)))
    if aug.intensity_prob > 0:
        t.append(mt.RandScaleIntensityd(["image"], factors=0.1, prob=aug.intensity_prob))
        t.append(mt.RandShiftIntensityd(["image"], offsets=0.1, prob=aug.intensity_prob))
    if aug.noise_prob > 0:
        t.append(mt.RandGaussianNoised(["image"], prob=aug.noise_prob, std=aug.noise_std))
    t.append(mt.EnsureTyped(keys, track_meta=False))
    return mt.Compose(t)
