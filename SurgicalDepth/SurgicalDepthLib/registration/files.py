"""Registration inputs from files: point sets (.npy, .ply, .txt/.csv) and CT surface targets.

The CLI reads through these, and so can a script; the panel reads the same targets from scene nodes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from SurgicalAICore.errors import InputError
from SurgicalDepthLib.registration.target import RegistrationTarget


def read_points_file(path: str | Path, what: str) -> np.ndarray:
    """An (N, k) float array from .npy, .ply (vertices) or whitespace/comma text."""
    array = _read_points_array(path, what)
    if array.dtype.kind not in "biuf" or array.ndim != 2:
        raise InputError(f"The {what} file {path} must hold a 2-D array of numbers, "
                         f"got {array.dtype} with shape {array.shape}.")
    return array.astype(np.float64)


def _read_points_array(path: str | Path, what: str) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{what} file not found: {p}")
    try:
        if p.suffix.lower() == ".npy":
            try:
                return np.load(p, allow_pickle=False)
            except Exception as error:  # numpy raises SyntaxError, TokenError... for a corrupt header
                raise ValueError(" ".join(str(error).split())[:120] or type(error).__name__) from None
        if p.suffix.lower() == ".ply":
            from SurgicalDepthLib.depth.pointcloud import read_ply

            return read_ply(p).points.astype(np.float64)
        return np.loadtxt(p, delimiter="," if p.suffix.lower() == ".csv" else None, ndmin=2)
    except InputError:
        raise
    except (OSError, ValueError, EOFError) as error:
        raise InputError(f"Cannot read {what} file {p}: {error}") from None


def load_target_file(path: str | Path, *, kind: str, segments: list[str] | None = None,
                     threshold_hu: float = -400.0, allow_open: bool = False,
                     cloud: np.ndarray | None = None) -> RegistrationTarget:
    """A registration target from a segmentation (label map or ``.seg.nrrd``; ``kind='segmentation'``),
    a CT volume's ``threshold_hu`` isosurface (``kind='ct'``) or a surface mesh (``kind='mesh'``: .stl, .ply,
    .vtk, .vtp, .obj; checked, and its units compared with ``cloud``'s)."""
    import SimpleITK as sitk

    from SurgicalAICore.geometry import array_from_sitk
    from SurgicalDepthLib.registration.target import (
        target_from_polydata,
        target_from_segmentation,
        threshold_surface,
    )

    path = Path(path)
    if kind == "mesh":
        from SurgicalDepthLib.registration.meshes import read_mesh, target_from_mesh

        return target_from_mesh(read_mesh(path), path.name, allow_open=allow_open, cloud=cloud)
    if not path.is_file():
        raise InputError(f"Target file not found: {path}")
    if kind == "segmentation" and path.name.endswith(".seg.nrrd"):
        from SurgicalAICore.mrml.segmentations import read_seg_nrrd

        return target_from_segmentation(read_seg_nrrd(path), segments)
    try:
        array, ijk_to_ras = array_from_sitk(sitk.ReadImage(str(path)))
    except RuntimeError as error:
        raise InputError(f"Cannot read {path}: {str(error).strip().splitlines()[-1]}") from None
    if kind == "ct":
        return target_from_polydata(threshold_surface(array, ijk_to_ras, threshold_hu), name=path.name)
    from SurgicalAICore.mrml.segmentations import new_segmentation_node

    values = [int(v) for v in np.unique(array) if v > 0]
    if not values:
        raise InputError(f"Label map {path} is empty: no surface to register to.")
    labels = [{"value": v, "name": str(v), "color": [1.0, 0.5, 0.3]} for v in values]
    node = new_segmentation_node(array.astype(np.int32), ijk_to_ras, labels, name=path.name, closed_surface=False)
    return target_from_segmentation(node, segments)
