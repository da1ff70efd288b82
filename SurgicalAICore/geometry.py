"""Image geometry and the one place where LPS (ITK, DICOM, NIfTI files) meets RAS (MRML).

Conventions used across the extension:
- arrays are indexed ``[k, j, i]`` (slice, row, column), as SimpleITK and Slicer return them;
- a volume's geometry is its 4x4 IJK->RAS matrix (mm);
- ITK images keep origin/direction in LPS; :data:`LPS_TO_RAS` converts, and only this module applies it.
"""
from __future__ import annotations


import numpy as np
import SimpleITK as sitk

from SurgicalAICore.errors import InputError

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
RAS_TO_LPS = LPS_TO_RAS  # the flip is its own inverse


def lps_to_ras_points(points: np.ndarray) -> np.ndarray:
    return np.asarray(points, dtype=float) * np.array([-1.0, -1.0, 1.0])


ras_to_lps_points = lps_to_ras_points


def compose_ijk_to_ras(spacing, directions, origin) -> np.ndarray:
    """IJK->RAS from spacing (3,), direction cosines (3x3, one column per axis) and origin (3,), all RAS."""
    m = np.eye(4)
    m[:3, :3] = np.asarray(directions, float) @ np.diag(np.asarray(spacing, float))
    m[:3, 3] = np.asarray(origin, float)
    return m


def decompose_ijk_to_ras(ijk_to_ras: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(spacing, directions 3x3 with unit columns, origin) of an IJK->RAS matrix; rejects degenerate ones."""
    m = np.asarray(ijk_to_ras, dtype=float)
    if m.shape != (4, 4) or not np.all(np.isfinite(m)):
        raise InputError("The volume geometry (IJK to RAS matrix) is not a finite 4x4 matrix.")
    spacing = np.linalg.norm(m[:3, :3], axis=0)
    if np.any(spacing <= 1e-9):
        raise InputError(f"The volume has zero spacing {tuple(np.round(spacing, 6))}; voxel sizes must be positive.")
    directions = m[:3, :3] / spacing
    if abs(np.linalg.det(directions)) < 1e-6:
        raise InputError("The volume's direction matrix is singular (axes are parallel).")
    return spacing, directions, m[:3, 3].copy()


def ijk_to_ras_from_sitk(image: sitk.Image) -> np.ndarray:
    """IJK->RAS of a 3-D SimpleITK image."""
    if image.GetDimension() != 3:
        raise InputError(f"Expected a 3-D image, got {image.GetDimension()}-D.")
    d = np.array(image.GetDirection(), float).reshape(3, 3)
    ijk_to_lps = compose_ijk_to_ras(image.GetSpacing(), d, image.GetOrigin())
    return LPS_TO_RAS @ ijk_to_lps


def set_sitk_geometry(image: sitk.Image, ijk_to_ras: np.ndarray) -> sitk.Image:
    """Give a 3-D SimpleITK image the geometry of an IJK->RAS matrix (in place; returned for chaining)."""
    ijk_to_lps = RAS_TO_LPS @ np.asarray(ijk_to_ras, float)
    spacing, directions, origin = decompose_ijk_to_ras(ijk_to_lps)
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetDirection(tuple(float(x) for x in directions.ravel()))
    image.SetOrigin(tuple(float(x) for x in origin))
    return image


def sitk_from_array(array_kji: np.ndarray, ijk_to_ras: np.ndarray, is_vector: bool = False) -> sitk.Image:
    image = sitk.GetImageFromArray(np.ascontiguousarray(array_kji), isVector=is_vector)
    return set_sitk_geometry(image, ijk_to_ras)


def array_from_sitk(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """(array [k, j, i(, c)], IJK->RAS) of a 3-D SimpleITK image."""
    return sitk.GetArrayFromImage(image), ijk_to_ras_from_sitk(image)


def voxel_volume_ml(ijk_to_ras: np.ndarray) -> float:
    """Volume of one voxel in millilitres."""
    return abs(float(np.linalg.det(np.asarray(ijk_to_ras, float)[:3, :3]))) / 1000.0
