"""Preprocessing for segmentation: input checks, resampling to the model spacing, CLAHE,
denoising and intensity normalisation as the model card says.

Images are SimpleITK images (LPS geometry, as read from files); the network input is a float32
array ``[c, k, j, i]`` on the model's grid (same origin and direction as the first channel,
the card's spacing).
"""

from __future__ import annotations

from typing import Any
from collections.abc import Mapping, Sequence

import numpy as np
import SimpleITK as sitk

from SurgicalAICore.errors import InputError

_NUMERIC_IDS = {
    sitk.sitkUInt8,
    sitk.sitkInt8,
    sitk.sitkUInt16,
    sitk.sitkInt16,
    sitk.sitkUInt32,
    sitk.sitkInt32,
    sitk.sitkUInt64,
    sitk.sitkInt64,
    sitk.sitkFloat32,
    sitk.sitkFloat64,
}


def check_image(image: sitk.Image, what: str = "The input volume") -> None:
    """Refuse what cannot be segmented: not 3-D, empty, colour/vector, non-numeric, zero spacing, NaN/inf."""
    if not isinstance(image, sitk.Image):
        raise InputError(f"{what} is not an image.")
    dim = image.GetDimension()
    size = image.GetSize()
    if dim == 4:
        raise InputError(f"{what} is 4-D {size}; give one 3-D volume (e.g. one time point).")
    if dim != 3:
        raise InputError(f"{what} is {dim}-D {size}; a 3-D volume is needed.")
    if 0 in size:
        raise InputError(f"{what} is empty (size {size}).")
    if min(size) < 2:
        raise InputError(f"{what} is a single slice {size}; a 3-D volume with several slices is needed.")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            f"{what} has {image.GetNumberOfComponentsPerPixel()} components per voxel (colour/vector); "
            "a scalar (grey-level) volume is needed."
        )
    if image.GetPixelID() not in _NUMERIC_IDS:
        raise InputError(f"{what} has non-numeric voxels ({image.GetPixelIDTypeAsString()}).")
    spacing = np.array(image.GetSpacing(), float)
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 1e-6):
        raise InputError(f"{what} has zero or invalid spacing {tuple(spacing)}; voxel sizes must be positive.")
    direction = np.array(image.GetDirection(), float).reshape(3, 3)
    if not np.all(np.isfinite(direction)) or abs(np.linalg.det(direction)) < 1e-6:
        raise InputError(f"{what} has a degenerate direction matrix.")
    if image.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64):
        array = sitk.GetArrayViewFromImage(image)
        if not np.all(np.isfinite(array)):
            bad = int(np.count_nonzero(~np.isfinite(array)))
            raise InputError(f"{what} has {bad} NaN or infinite voxel(s); fix or mask them first.")


def check_4d_array(array: np.ndarray, what: str = "The input volume") -> None:
    """Arrays of nodes may be 4-D (vector/RGB volumes): name that clearly."""
    if array.ndim == 4:
        if array.shape[3] in (3, 4):
            raise InputError(
                f"{what} is an RGB/colour volume ({array.shape[3]} components); a grey-level CT/MR is needed."
            )
        raise InputError(f"{what} has {array.shape[3]} components per voxel (4-D); give one 3-D scalar volume.")


def resample_to_spacing(
    image: sitk.Image, spacing: Sequence[float], interpolator=sitk.sitkLinear, default_value: float = 0.0
) -> sitk.Image:
    """``image`` on a grid with the same origin and direction, covering the same extent, at ``spacing``."""
    old_spacing = np.array(image.GetSpacing(), float)
    new_spacing = np.array(spacing, float)
    new_spacing = np.where(new_spacing > 0, new_spacing, old_spacing)  # 0: keep (2-D models' slice axis)
    if np.allclose(old_spacing, new_spacing, rtol=1e-4):
        return image
    old_size = np.array(image.GetSize(), float)
    new_size = np.maximum(np.round(old_size * old_spacing / new_spacing), 1)
    from SurgicalAICore.validation import check_allocation

    check_allocation(
        new_size,
        4 * max(1, image.GetNumberOfComponentsPerPixel()),
        f"volume resampled to {tuple(float(s) for s in new_spacing)} mm",
    )
    new_size = new_size.astype(int)
    return sitk.Resample(
        image,
        [int(s) for s in new_size],
        sitk.Transform(),
        interpolator,
        image.GetOrigin(),
        [float(s) for s in new_spacing],
        image.GetDirection(),
        float(default_value),
        image.GetPixelID(),
    )


def resample_like(
    image: sitk.Image, reference: sitk.Image, interpolator=sitk.sitkNearestNeighbor, default_value: float = 0.0
) -> sitk.Image:
    """``image`` resampled onto ``reference``'s grid (labels: nearest neighbour)."""
    if (
        image.GetSize() == reference.GetSize()
        and np.allclose(image.GetSpacing(), reference.GetSpacing(), rtol=1e-6)
        and np.allclose(image.GetOrigin(), reference.GetOrigin(), atol=1e-4)
        and np.allclose(image.GetDirection(), reference.GetDirection(), atol=1e-6)
    ):
        out = sitk.Image(image)
        out.CopyInformation(reference)
        return out
    return sitk.Resample(image, reference, sitk.Transform(), interpolator, float(default_value), image.GetPixelID())


def apply_clahe(image: sitk.Image) -> sitk.Image:
    """Contrast-limited adaptive histogram equalisation (SimpleITK), keeping the intensity range."""
    return sitk.AdaptiveHistogramEqualization(image, radius=[8, 8, 4], alpha=0.3, beta=0.3)


def apply_denoise(image: sitk.Image) -> sitk.Image:
    """Edge-preserving smoothing (curvature flow), a few iterations.

    The filter works in physical units, so the time step scales with the squared voxel size to
    smooth about as much on a 3 mm grid as on a 1 mm one (0.0625 is stable for unit spacing)."""
    step = 0.0625 * float(min(image.GetSpacing())) ** 2
    return sitk.CurvatureFlow(image, timeStep=step, numberOfIterations=5)


def normalize(array: np.ndarray, norm: Mapping[str, Any]) -> np.ndarray:
    """Intensity normalisation of one channel as the model card says."""
    array = array.astype(np.float32, copy=False)
    kind = norm["type"]
    if kind == "ct":
        lo, hi = norm["clip"]
        return ((np.clip(array, lo, hi) - float(norm["mean"])) / float(norm["std"])).astype(np.float32)
    if kind == "zscore_foreground":
        mask = array != 0
        if not mask.any():
            raise InputError("The MR volume is all zero; nothing to normalise.")
        values = array[mask]
        std = float(values.std()) or 1.0
        out = np.zeros_like(array)
        out[mask] = (values - float(values.mean())) / std
        return out
    if kind == "zscore":
        return ((array - float(array.mean())) / max(float(array.std()), 1e-8)).astype(np.float32)
    return array.copy()


def resolve_options(card: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """Card defaults (preprocessing/postprocessing/inference) overridden by non-None ``options``."""
    pre = dict(card.get("preprocessing", {}))
    inf = dict(card.get("inference", {}))
    post = dict(card.get("postprocessing", {}))
    resolved = {
        "clahe": bool(pre.get("clahe", False)),
        "denoise": bool(pre.get("denoise", False)),
        "tta": bool(inf.get("tta", True)),
        "tta_axes": list(inf.get("tta_axes", [0, 1, 2])),
        "overlap": float(inf.get("overlap", 0.5)),
        "blend": str(inf.get("blend", "gaussian")),
        "largest_component": post.get("largest_component", False),
        "fill_holes": bool(post.get("fill_holes", False)),
    }
    for key, value in options.items():
        if key in resolved and value is not None:
            resolved[key] = value
    return resolved


def prepare_input(
    channels: list[sitk.Image], card: Mapping[str, Any], clahe: bool = False, denoise: bool = False
) -> tuple[np.ndarray, sitk.Image]:
    """(network input ``[c, k, j, i]`` float32, the model-grid reference image) from input channels."""
    expected = len(card["channels"])
    if len(channels) != expected:
        raise InputError(
            f"The model expects {expected} input channel(s) ({', '.join(card['channels'])}), got {len(channels)}."
        )
    for n, image in enumerate(channels):
        check_image(image, "The input volume" if expected == 1 else f"Input channel '{card['channels'][n]}'")
    if card.get("orientation"):  # models trained on reoriented arrays (MONAI bundles' Orientationd)
        channels = [sitk.DICOMOrient(image, str(card["orientation"])) for image in channels]
    first = sitk.Cast(channels[0], sitk.sitkFloat32)
    grid = resample_to_spacing(first, card["spacing"], sitk.sitkLinear, default_value=_background(first))
    arrays = []
    for n, (image, norm) in enumerate(zip(channels, card["normalization"], strict=False)):
        image = sitk.Cast(image, sitk.sitkFloat32)
        if n == 0:
            resampled = grid
        else:
            resampled = sitk.Resample(
                image, grid, sitk.Transform(), sitk.sitkLinear, _background(image), sitk.sitkFloat32
            )
        if denoise:
            resampled = apply_denoise(resampled)
        if clahe:
            resampled = apply_clahe(resampled)
        arrays.append(normalize(sitk.GetArrayFromImage(resampled), norm))
    return np.stack(arrays).astype(np.float32), grid


def _background(image: sitk.Image) -> float:
    """Value for voxels outside the input when resampling: its minimum (air for CT, 0 for MR)."""
    stats = sitk.MinimumMaximumImageFilter()
    stats.Execute(image)
    return float(stats.GetMinimum())
