"""Fuse several registered depth frames into one surface cloud, numpy only: a TSDF (the default, see
:mod:`~SurgicalDepthLib.registration.tsdf`) or surfels on a voxel grid.

Each frame's camera-frame cloud is placed with its camera-to-CT pose (from tracking, a tracker or structure
from motion); points falling in the same ``voxel_mm`` cell are averaged, so repeated views of one patch become
one less noisy surfel and the fused cloud covers what all the frames saw, not one frame's narrow cone. Cells
seen in fewer than ``min_frames`` frames are dropped (a one-off depth artefact does not survive).

Monocular depth carries a scale of its own in every frame, so frames placed with a metric (or one-scale SfM)
motion disagree where they overlap and their union is a smeared double surface. ``align_scale`` first fits each
frame's depth scale to the frames before it along its own viewing rays (:func:`align_depth_scales`).
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
    scales: np.ndarray | None = None  # (n_frames,) depth scale applied to each frame (align_scale)
    normals: np.ndarray | None = None  # (M, 3) unit normals where the method gives them (TSDF)
    voxel_mm: float | None = None


METHODS = ("tsdf", "cells")


def fuse_frames(clouds: list[np.ndarray], poses: list[np.ndarray], method: str = "tsdf",
                voxel_mm: float | None = None, min_frames: int = 1, align_scale: bool = False,
                trunc_mm: float | None = None) -> FusedCloud:
    """Fuse camera-frame ``clouds`` placed by ``poses`` with ``method``: ``tsdf`` (signed distances along each
    frame's rays averaged per voxel; merges frames whose depth disagrees, as monocular depth does) or ``cells``
    (points averaged per cell; keeps every frame's own surface). ``voxel_mm`` None: 1/85 of the median depth
    for ``tsdf``, 1 mm for ``cells``."""
    if method not in METHODS:
        raise InputError(f"Unknown fusion method '{method}': use one of {', '.join(METHODS)}.")
    if method == "cells":
        return fuse_clouds(clouds, poses, voxel_mm or 1.0, min_frames, align_scale)
    from SurgicalDepthLib.registration.tsdf import fuse_tsdf_clouds

    checked, matrices = _checked_frames(clouds, poses)
    scales = align_depth_scales(checked, matrices) if align_scale else np.ones(len(checked))
    surface = fuse_tsdf_clouds([k * c for k, c in zip(scales, checked, strict=True)], matrices, voxel_mm, trunc_mm,
                               min_weight=float(min_frames))
    return FusedCloud(surface.points, surface.weights.astype(int), surface.weights.astype(int), len(checked),
                      scales, surface.normals, surface.voxel_mm)


def _ray_scale(cloud: np.ndarray, pose: np.ndarray, tree, gate_mm: float, iterations: int = 30) -> float:
    """The factor s that puts ``pose`` applied to ``s * cloud`` onto the points of ``tree`` (nearest neighbours,
    gated), measured along each point's viewing ray: robust (median) and one-dimensional, so a frame that
    overlaps the others only partly still gets its scale from the part it shares. Where the surface is seen
    obliquely the nearest neighbour lies mostly across the ray, so each step corrects only part of the error:
    8 steps left frames seen from 80 mm 2-3 % off, 30 reach 0.1 % (it stops once a step changes < 0.01 %)."""
    rot, t = pose[:3, :3], pose[:3, 3]
    rays = cloud @ rot.T
    dist = np.linalg.norm(rays, axis=1)
    ok = dist > 0
    rays, dist = rays[ok] / dist[ok, None], dist[ok]
    # coarse: the factor (0.5-2) that lands most points near the others, since a 15 % error at 100 mm is
    # already far outside the gate; then refine along the rays
    grid = np.geomspace(0.5, 2.0, 49)
    support = [np.isfinite(tree.query(t + rays * (g * dist)[:, None], distance_upper_bound=gate_mm)[0]).sum()
               for g in grid]
    s = float(grid[int(np.argmax(support))])
    for _ in range(iterations):
        placed = t + rays * (s * dist)[:, None]
        gap, idx = tree.query(placed, distance_upper_bound=gate_mm)
        near = np.isfinite(gap)
        if near.sum() < max(30, 0.05 * len(dist)):
            return s
        # depth along the ray of the neighbour, over this frame's depth: the scale that would land on it
        along = ((tree.data[idx[near]] - t) * rays[near]).sum(1)
        s_new = s * float(np.median(along / (s * dist[near])))
        if abs(s_new - s) < 1e-4 * s:
            return s_new
        s = s_new
    return s


def align_depth_scales(clouds: list[np.ndarray], poses: list[np.ndarray], gate_mm: float = 5.0) -> np.ndarray:
    """Per-frame depth scale (frame 0 keeps 1): each frame in turn is fitted to all frames before it."""
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(0)

    def sample(points: np.ndarray, n: int) -> np.ndarray:  # a few thousand points fix one number well enough
        points = np.asarray(points, float)
        return points[rng.choice(len(points), n, replace=False)] if len(points) > n else points

    scales = np.ones(len(clouds))
    placed = [sample(clouds[0], 4000) @ poses[0][:3, :3].T + poses[0][:3, 3]]
    for i in range(1, len(clouds)):
        reference = sample(np.concatenate(placed), 20000)
        cloud = sample(clouds[i], 3000)
        scales[i] = _ray_scale(cloud, poses[i], cKDTree(reference), gate_mm)
        placed.append((scales[i] * cloud) @ poses[i][:3, :3].T + poses[i][:3, 3])
    return scales


def _checked_frames(clouds, poses) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Clouds as (N, 3) float arrays and poses as 4x4 matrices, or one clear error naming the frame."""
    if len(clouds) != len(poses):
        raise InputError(f"Fusion needs one pose per cloud: {len(clouds)} clouds, {len(poses)} poses.")
    if len(clouds) < 2:
        raise InputError("Fusion needs at least two frames; register a single frame directly instead.")
    checked, matrices = [], []
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
        checked.append(pts)
        matrices.append(m)
    return checked, matrices


def fuse_clouds(clouds: list[np.ndarray], poses: list[np.ndarray], voxel_mm: float = 1.0,
                min_frames: int = 1, align_scale: bool = False) -> FusedCloud:
    """Fuse camera-frame ``clouds`` placed by ``poses`` (camera-to-CT, rigid or with one uniform scale);
    ``align_scale``: fit each frame's depth scale to the frames before it first."""
    if not voxel_mm > 0:
        raise InputError(f"The fusion voxel size must be positive, got {voxel_mm}.")
    checked, matrices = _checked_frames(clouds, poses)
    scales = align_depth_scales(checked, matrices) if align_scale else np.ones(len(checked))
    allp = np.concatenate([(k * p) @ m[:3, :3].T + m[:3, 3] for k, p, m in zip(scales, checked, matrices, strict=True)])
    allf = np.concatenate([np.full(len(p), i) for i, p in enumerate(checked)])
    keys = np.floor(allp / voxel_mm).astype(np.int64)
    _, cell, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    cell = cell.ravel()
    sums = np.zeros((len(counts), 3))
    np.add.at(sums, cell, allp)
    # distinct frames per cell: unique (cell, frame) pairs
    pairs = np.unique(cell * len(clouds) + allf)
    seen = np.bincount(pairs // len(clouds), minlength=len(counts))
    keep = seen >= min_frames
    return FusedCloud(sums[keep] / counts[keep, None], counts[keep], seen[keep], len(clouds), scales,
                      voxel_mm=voxel_mm)


def fused_polydata(fused: FusedCloud):
    """vtkPolyData of the fused points, one vertex cell each, with a "frames" array (views per surfel)."""
    from vtk.util import numpy_support

    from SurgicalDepthLib.depth.pointcloud import points_polydata

    poly = points_polydata(fused.points, float)
    frames = numpy_support.numpy_to_vtk(np.ascontiguousarray(fused.frames, np.int32), deep=True)
    frames.SetName("frames")
    poly.GetPointData().AddArray(frames)
    if fused.normals is not None:
        normals = numpy_support.numpy_to_vtk(np.ascontiguousarray(fused.normals, np.float32), deep=True)
        normals.SetName("Normals")
        poly.GetPointData().SetNormals(normals)
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
