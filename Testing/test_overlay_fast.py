"""The overlay's fast path (``silhouette``, box blending) against the reference (``structure_mask``, whole-frame
blending): the same pixels, exactly.

Exact, not within a tolerance, because the fast path does the reference's arithmetic (the same projection, the
same 1/16-pixel rounding, the same near-plane and field culling, the same fill groups and passes, the same float32
blend), only on flat columns, in a box, with per-mesh work done once: any difference is a bug. Poses cover a
whole view, a close-up cut by the near plane (so the kept triangles' groups are renumbered), structures partly and
wholly off-screen, a distorted lens, the field-of-view mask, and the uncertain state's outlines.
"""
from dataclasses import replace

import numpy as np
import pytest
import vtk

from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics
from SurgicalDepthLib.overlay.composite import overlay_frame, silhouette, structure_mask, structures_from_surfaces
from SurgicalDepthLib.registration import shapes

LENS = CameraIntrinsics(300.0, 310.0, 165.3, 118.7, 320, 240, (-0.25, 0.08, 0.001, -0.002, 0.0))
PINHOLE = CameraIntrinsics(280.0, 280.0, 160.0, 128.0, 320, 256)


def _surfaces():
    """An organ, a ball behind it (overlapping in the image) and a thin tube: folds and crossings."""
    organ = shapes.organ_polydata(radius_mm=25, resolution=40, centre=(0, 0, 0))
    ball = vtk.vtkSphereSource()
    ball.SetCenter(8, 5, 30)
    ball.SetRadius(12)
    ball.SetThetaResolution(48)
    ball.SetPhiResolution(48)
    tube = vtk.vtkCylinderSource()
    tube.SetRadius(3)
    tube.SetHeight(90)
    tube.SetResolution(24)
    tube.SetCenter(-5, 0, 10)
    out = {"organ": organ}
    for name, src in (("ball", ball), ("tube", tube)):
        src.Update()
        tri = vtk.vtkTriangleFilter()
        tri.SetInputData(src.GetOutput())
        tri.Update()
        out[name] = tri.GetOutput()
    return out


def _camera_pose(distance_mm, rng, aim=(0.0, 0.0, 0.0)):
    """Camera-to-RAS pose of a camera ``distance_mm`` from ``aim`` looking at it, from a random direction."""
    look = rng.normal(size=3)
    look /= np.linalg.norm(look)
    z = -look
    x = np.cross(z, rng.normal(size=3))
    x /= np.linalg.norm(x)
    pose = np.eye(4)
    pose[:3, :3] = np.column_stack([x, np.cross(z, x), z])
    pose[:3, 3] = np.asarray(aim) + distance_mm * look
    return pose


@pytest.fixture(scope="module")
def structures():
    return structures_from_surfaces(_surfaces(), max_triangles=4000)


@pytest.mark.parametrize("camera", [PINHOLE, LENS], ids=["pinhole", "lens"])
def test_fast_overlay_draws_the_reference_pixels(structures, camera):
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (camera.height, camera.width, 3)).astype(np.uint8)
    fov = np.hypot(*np.mgrid[:camera.height, :camera.width] - np.array([camera.height / 2, camera.width / 2])[:, None,
                                                                                                            None]) < 150
    cut = total = 0
    for distance, aim in [(150, (0, 0, 0)), (90, (0, 0, 0)), (30, (0, 0, 10)), (12, (0, 0, 0)), (120, (60, 0, 0)),
                          (80, (200, 0, 0))]:
        pose = _camera_pose(distance, rng, aim)
        for s in structures:
            ref = structure_mask(s, pose, camera)
            fast, (y0, y1, x0, x1) = silhouette(s, pose, camera)
            assert np.array_equal(fast, ref), (s.name, distance)
            assert not fast.any() or fast[y0:y1, x0:x1].sum() == fast.sum()  # nothing drawn outside the box
            total += ref.any()
            cam_z = (s.vertices - pose[:3, 3]) @ pose[:3, 2]
            cut += bool(ref.any() and (cam_z <= 1.0).any())
        for kwargs in ({}, {"field_of_view": fov}, {"opacity": 0.0, "outline_px": 2}):
            a, ma = overlay_frame(frame, structures, pose, camera, fast=False, **kwargs)
            b, mb = overlay_frame(frame, structures, pose, camera, **kwargs)
            assert np.array_equal(a, b) and all(np.array_equal(ma[k], mb[k]) for k in ma)
    assert total >= 8 and cut >= 1, (total, cut)  # the poses did exercise drawn and near-plane-cut structures


def test_the_per_mesh_geometry_survives_the_uncertain_recolouring(structures):
    """The uncertain state redraws recoloured copies every frame: they share the mesh's worked-out geometry."""
    neutral = [replace(s, color=(255, 220, 120)) for s in structures]
    assert all(n.geometry is s.geometry for n, s in zip(neutral, structures, strict=True))
    pose = _camera_pose(90, np.random.default_rng(1))
    for n, s in zip(neutral, structures, strict=True):
        assert np.array_equal(silhouette(n, pose, PINHOLE)[0], structure_mask(s, pose, PINHOLE))
