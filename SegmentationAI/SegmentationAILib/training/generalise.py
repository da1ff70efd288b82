"""Training samples that teach a model more than its few training CTs show.

A model trained on one or two whole-body CTs learns that body at that field of view: on another patient's
partial scan (a slab of 20 slices, a smaller reconstruction circle, another contrast phase, thicker slices)
it finds nothing. :class:`GeneralisingSampler` draws patches that vary exactly those things, in Hounsfield
units before normalisation:

==================  ==============================================================================
extent              p=0.3 a slab of 3-40 slices kept, the rest air (as a short scan looks once padded);
                    p=0.2 a reconstruction circle that cuts the body; outside the scan = air, labels 0;
                    the patch centre (a class-balanced voxel) always stays inside
anatomy             scaling 0.75-1.3 (per axis ±10 % more), rotation ±15° axial, ±6° tilt, head-foot
                    mirror p=0.5 (never left-right: organs have a side)
slice thickness     p=0.5 blur along the slice axis (sigma 0-1.5 voxels: 3-8 mm slices)
contrast phase      p=0.4 each structure's HU shifted by its own random offset (aorta -150..+250 HU:
                    native to arterial; kidneys ±80; parenchyma ±40), smoothed so no label-shaped edge is
                    left to learn from (a CT-flavoured cousin of SynthSeg's label-driven intensities,
                    Billot et al., Medical Image Analysis 2023)
scanner             HU scale 0.9-1.1, shift ±30; noise sd 0-40 HU (low dose); smoothing (soft kernels)
==================  ==============================================================================

Padding is air (-1000 HU) everywhere, matching inference, which pads with the image's minimum.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

AIR_HU = -1000.0


@dataclass(frozen=True)
class GeneraliseSettings:
    slab_prob: float = 0.3
    slab_slices: tuple[int, int] = (3, 40)
    circle_prob: float = 0.2
    scale: tuple[float, float] = (0.75, 1.3)
    axis_jitter: float = 0.1
    rotate_axial_deg: float = 15.0
    tilt_deg: float = 6.0
    mirror_head_foot_prob: float = 0.5
    thick_slice_prob: float = 0.5
    thick_slice_sigma: float = 1.5
    phase_prob: float = 0.4
    hu_scale: tuple[float, float] = (0.9, 1.1)
    hu_shift: float = 30.0
    noise_sd_hu: float = 40.0
    smooth_prob: float = 0.2


def _rotation(rng: np.random.Generator, s: GeneraliseSettings) -> np.ndarray:
    """Rotation in array (k, j, i) axes: mostly about k (the axial plane), a little tilt about j and i."""
    a, b, c = np.radians([rng.uniform(-s.rotate_axial_deg, s.rotate_axial_deg),
                          rng.uniform(-s.tilt_deg, s.tilt_deg), rng.uniform(-s.tilt_deg, s.tilt_deg)])
    about_k = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    about_j = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    about_i = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return about_k @ about_j @ about_i


class GeneralisingSampler:
    """Random patches ``(image [1, P, P, P] normalised float32, labels [P, P, P] int64)`` from labelled CTs.

    ``cases`` are ``(hu, labels)`` arrays ``[k, j, i]`` on the model grid (its spacing and orientation);
    ``normalise`` maps HU to the network input (the model card's normalisation); ``phase_offsets`` gives,
    per label value, the range of its contrast-phase HU offset.
    """

    def __init__(self, cases: Sequence[tuple[np.ndarray, np.ndarray]], patch: int, normalise,
                 phase_offsets: Mapping[int, tuple[float, float]], settings: GeneraliseSettings | None = None):
        self.cases = [(np.asarray(h, np.float32), np.asarray(lab, np.int64)) for h, lab in cases]
        self.patch = int(patch)
        self.normalise = normalise
        self.phase_offsets = dict(phase_offsets)
        self.settings = settings or GeneraliseSettings()
        self._where = [{int(v): np.argwhere(lab == v) for v in np.unique(lab)} for _, lab in self.cases]

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        n = int(rng.integers(len(self.cases)))
        hu, labels = self.cases[n]
        hu, labels = self._spatial(hu, labels, self._centre(n, rng), rng)
        hu = self._phase(hu, labels, rng)
        hu = self._scanner(hu, rng)
        hu, labels = self._extent(hu, labels, rng)
        return self.normalise(hu)[None].astype(np.float32), labels

    def _centre(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Class-balanced: every label value (background included) equally likely to be the centre."""
        where = self._where[n]
        values = sorted(where)
        voxels = where[values[int(rng.integers(len(values)))]]
        return voxels[int(rng.integers(len(voxels)))] + rng.integers(-8, 9, 3)

    def _spatial(self, hu, labels, centre, rng):
        s = self.settings
        scale = rng.uniform(*s.scale) * rng.uniform(1 - s.axis_jitter, 1 + s.axis_jitter, 3)
        matrix = _rotation(rng, s) @ np.diag(1.0 / scale)  # output voxel -> input voxel
        if rng.random() < s.mirror_head_foot_prob:
            matrix = matrix @ np.diag([-1.0, 1.0, 1.0])
        half = self.patch // 2  # whole voxels: an unaugmented patch is an exact crop
        offset = centre - matrix @ np.full(3, half)
        shape = (self.patch,) * 3
        image = ndimage.affine_transform(hu, matrix, offset, shape, order=1, mode="constant", cval=AIR_HU)
        label = ndimage.affine_transform(labels, matrix, offset, shape, order=0, mode="constant", cval=0)
        return image.astype(np.float32), label.astype(np.int64)

    def _phase(self, hu, labels, rng):
        if rng.random() >= self.settings.phase_prob:
            return hu
        shift = np.zeros_like(hu)
        for value, (low, high) in self.phase_offsets.items():
            mask = labels == value
            if mask.any():
                shift[mask] = rng.uniform(low, high)
        return hu + ndimage.gaussian_filter(shift, 1.0)

    def _scanner(self, hu, rng):
        s = self.settings
        if rng.random() < s.thick_slice_prob:
            hu = ndimage.gaussian_filter1d(hu, rng.uniform(0.3, s.thick_slice_sigma), axis=0)
        if rng.random() < s.smooth_prob:
            hu = ndimage.gaussian_filter(hu, rng.uniform(0.3, 1.0))
        body = hu > -900  # air stays air: scanners calibrate it, and padding must look like it
        hu = np.where(body, hu * rng.uniform(*s.hu_scale) + rng.uniform(-s.hu_shift, s.hu_shift), hu)
        noise_sd = rng.uniform(0, s.noise_sd_hu)
        return (hu + rng.normal(0, noise_sd, hu.shape)).astype(np.float32)

    def _extent(self, hu, labels, rng):
        s = self.settings
        keep = np.ones(hu.shape, bool)
        if rng.random() < s.slab_prob:
            slices = int(rng.integers(s.slab_slices[0], s.slab_slices[1] + 1))
            half = self.patch // 2  # the class-balanced centre lands here: keep it in the scan
            first = int(rng.integers(half - slices + 1, half + 1))
            keep[: max(first, 0)] = False
            keep[max(first + slices, 0):] = False
        if rng.random() < s.circle_prob:
            jj, ii = np.mgrid[: self.patch, : self.patch]
            radius = rng.uniform(0.4, 1.0) * self.patch
            c = self.patch / 2 + rng.uniform(-0.7, 0.7, 2) * radius / np.sqrt(2)
            keep &= ((jj - c[0]) ** 2 + (ii - c[1]) ** 2 <= radius**2)[None]
        if keep.all():
            return hu, labels
        return np.where(keep, hu, AIR_HU).astype(np.float32), np.where(keep, labels, 0)
