"""Analytic test shapes for registration: a bumpy organ-like closed surface and rigid perturbations.

Used by the tests, the benchmark and the evaluation when no rendered scenario is at hand; the
bumps make every rotation and translation observable, unlike a sphere or a plane.
"""
from __future__ import annotations

import numpy as np
import vtk
from vtk.util import numpy_support


def organ_polydata(radius_mm: float = 40.0, resolution: int = 120, centre=(0.0, 0.0, 0.0),
                   axes=(1.3, 1.0, 0.8)) -> vtk.vtkPolyData:
    """A closed, smooth, bumpy ellipsoid (RAS, mm)."""
    s = vtk.vtkSphereSource()
    s.SetRadius(1.0)
    s.SetThetaResolution(resolution)
    s.SetPhiResolution(resolution)
    s.Update()
    poly = vtk.vtkPolyData()
    poly.DeepCopy(s.GetOutput())
    u = numpy_support.vtk_to_numpy(poly.GetPoints().GetData()).astype(float)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    bump = 1 + 0.15 * np.sin(3 * u[:, 0] + 1) * np.cos(2 * u[:, 1]) + 0.1 * np.sin(4 * u[:, 2] + 0.5 * u[:, 0])
    pts = u * radius_mm * bump[:, None] * np.asarray(axes, float) + np.asarray(centre, float)
    poly.GetPoints().SetData(numpy_support.numpy_to_vtk(pts, deep=True))
    return poly


def rotation_about_axis(axis, angle_deg: float) -> np.ndarray:
    a = np.asarray(axis, float)
    a = a / np.linalg.norm(a)
    t = np.radians(angle_deg)
    K = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(t) * K + (1 - np.cos(t)) * K @ K


def perturbation(angle_deg: float, shift_mm: float, centre, rng: np.random.Generator,
                 scale: float = 1.0) -> np.ndarray:
    """4x4 rotating by exactly ``angle_deg`` about a random axis through ``centre``, then shifting by
    exactly ``shift_mm`` in a random direction (and scaling about ``centre``)."""
    R = rotation_about_axis(rng.normal(size=3), angle_deg) * scale
    d = rng.normal(size=3)
    d *= shift_mm / np.linalg.norm(d)
    c = np.asarray(centre, float)
    m = np.eye(4)
    m[:3, :3] = R
    m[:3, 3] = c - R @ c + d
    return m


def visible_patch(points: np.ndarray, direction, fraction: float = 0.5) -> np.ndarray:
    """The ``fraction`` of ``points`` furthest along ``direction`` (a one-sided view of a surface)."""
    d = np.asarray(direction, float)
    h = points @ (d / np.linalg.norm(d))
    return points[h >= np.quantile(h, 1 - fraction)]


def surface_samples(poly: vtk.vtkPolyData, spacing_mm: float = 1.0, seed: int = 1) -> np.ndarray:
    """Points drawn uniformly on a surface, independent of any target's own samples."""
    from SurgicalDepthLib.registration.target import mesh_arrays, sample_surface

    verts, tris = mesh_arrays(poly)
    pts, _, _ = sample_surface(verts, tris, spacing_mm, seed=seed)
    return pts[: -len(np.unique(tris))]  # random samples only, not the mesh vertices


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    m = np.asarray(matrix, float)
    return np.asarray(points, float) @ m[:3, :3].T + m[:3, 3]


def outliers(points: np.ndarray, fraction: float, rng: np.random.Generator, margin_mm: float = 20.0) -> np.ndarray:
    """Points uniform in the (enlarged) bounding box, so they make ``fraction`` of the combined cloud."""
    n = round(len(points) * fraction / (1 - fraction))
    lo, hi = points.min(0) - margin_mm, points.max(0) + margin_mm
    return rng.uniform(lo, hi, size=(n, 3))
