"""Fuse several registered depth frames into one surface cloud (surfels on a voxel grid), numpy only.

Each frame's camera-frame cloud is placed with its camera-to-CT pose (from tracking, a tracker or structure
from motion); points falling in the same ``voxel_mm`` cell are averaged, so repeated views of one patch become
one less noisy surfel and the fused cloud covers what all the frames saw, not one frame's narrow cone. Cells
seen in fewer than ``min_frames`` frames are dropped (a one-off depth artefact does not survive).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from SurgicalAICore.atomic import atomic_file
from SurgicalAICore.errors import InputError
from SurgicalDepthLib.registration.motion import check_rigid


@dataclass
class FusedCloud:
    points: np.ndarray     # (M, 3) RAS mm: mean of each occupied cell
    counts: np.ndarray     # (M,) points averaged into each
    frames: np.ndarray     # (M,) distinct frames that saw each cell
    n_frames: int


def fuse_clouds(clouds: list[np.ndarray], poses: list[np.ndarray], voxel_mm: float = 1.0,
                min_frames: int = 1) -> FusedCloud:
    """Fuse camera-frame ``clouds`` placed by ``poses`` (camera-to-CT, rigid or with one uniform scale)."""
    if len(clouds) != len(poses):
        raise InputError(f"Fusion needs one pose per cloud: {len(clouds)} clouds, {len(poses)} poses.")
    if len(clouds) < 2:
        raise InputError("Fusion needs at least two frames; register a single frame directly instead.")
    if not voxel_mm > 0:
        raise InputError(f"The fusion voxel size must be positive, got {voxel_mm}.")
    placed, frame_ids = [], []
    for i, (cloud, pose) in enumerate(zip(clouds, poses, strict=True)):
        pts = np.asarray(cloud, float)
        if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) == 0:
            raise InputError(f"Frame {i}: the cloud must be a non-empty (N, 3) array, got shape {pts.shape}.")
        if not np.all(np.isfinite(pts)):
            raise InputError(f"Frame {i}: the cloud has NaN/inf points; drop invalid depth first.")
        m = np.asarray(pose, float)
        s = np.cbrt(np.linalg.det(m[:3, :3])) if m.shape == (4, 4) and np.all(np.isfinite(m)) else 1.0
        rigid = m.copy() if m.shape == (4, 4) else m
        if m.shape == (4, 4) and s > 0:
            rigid[:3, :3] = m[:3, :3] / s
        check_rigid(rigid, f"pose of frame {i}")
        placed.append(pts @ m[:3, :3].T + m[:3, 3])
        frame_ids.append(np.full(len(pts), i))
    allp, allf = np.concatenate(placed), np.concatenate(frame_ids)
    keys = np.floor(allp / voxel_mm).astype(np.int64)
    _, cell, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    cell = cell.ravel()
    sums = np.zeros((len(counts), 3))
    np.add.at(sums, cell, allp)
    # distinct frames per cell: unique (cell, frame) pairs
    pairs = np.unique(cell * len(clouds) + allf)
    seen = np.bincount(pairs // len(clouds), minlength=len(counts))
    keep = seen >= min_frames
    return FusedCloud(sums[keep] / counts[keep, None], counts[keep], seen[keep], len(clouds))


def fused_polydata(fused: FusedCloud):
    """vtkPolyData of the fused points, one vertex cell each, with a "frames" array (views per surfel)."""
    import vtk
    from vtk.util import numpy_support

    n = len(fused.points)
    poly = vtk.vtkPolyData()
    pts = vtk.vtkPoints()
    pts.SetData(numpy_support.numpy_to_vtk(np.ascontiguousarray(fused.points, float), deep=True))
    poly.SetPoints(pts)
    verts = vtk.vtkCellArray()
    verts.SetData(numpy_support.numpy_to_vtkIdTypeArray(np.arange(n + 1, dtype=np.int64), deep=True),
                  numpy_support.numpy_to_vtkIdTypeArray(np.arange(n, dtype=np.int64), deep=True))
    poly.SetVerts(verts)
    frames = numpy_support.numpy_to_vtk(np.ascontiguousarray(fused.frames, np.int32), deep=True)
    frames.SetName("frames")
    poly.GetPointData().AddArray(frames)
    return poly


def write_fused(fused: FusedCloud, path) -> None:
    """``.ply`` or ``.vtk``/``.vtp`` point set (vertices), written to a temporary name then renamed."""
    from pathlib import Path

    import vtk

    path = Path(path)
    writers = {".ply": vtk.vtkPLYWriter, ".vtk": vtk.vtkPolyDataWriter, ".vtp": vtk.vtkXMLPolyDataWriter}
    if path.suffix.lower() not in writers:
        raise InputError(f"Fused surface format '{path.suffix}' is not supported: use .ply, .vtk or .vtp.")
    poly = fused_polydata(fused)
    with atomic_file(path, path.suffix) as tmp:
        w = writers[path.suffix.lower()]()
        w.SetFileName(str(tmp))
        w.SetInputData(poly)
        if not w.Write():
            raise OSError(f"Cannot write {path}")
