"""Depth -> point cloud: exactness against a rendered surface, downsampling, PLY, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import vtk

from SurgicalAICore.errors import InputError
from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics, transform_points
from SurgicalDepthLib.depth.pointcloud import (
    DEPTH_ARRAY,
    RGB_ARRAY,
    PointCloud,
    depth_to_pointcloud,
    polydata_from_cloud,
    read_ply,
    voxel_downsample,
    write_ply,
)


def sphere(radius=30.0):
    source = vtk.vtkSphereSource()
    source.SetRadius(radius)
    source.SetThetaResolution(96)
    source.SetPhiResolution(96)
    tri = vtk.vtkTriangleFilter()
    tri.SetInputConnection(source.GetOutputPort())
    tri.Update()
    return tri.GetOutput()


def looking_anterior(position):
    """Camera-to-RAS pose: x -> R, y (down) -> -S, z (forward) -> +A."""
    pose = np.eye(4)
    pose[:3, :3] = np.column_stack([[1, 0, 0], [0, 0, -1], [0, 1, 0]])
    pose[:3, 3] = position
    return pose


def surface_distance(poly, points_ras):
    implicit = vtk.vtkImplicitPolyDataDistance()
    implicit.SetInput(poly)
    return np.array([abs(implicit.EvaluateFunction(*p)) for p in points_ras])


def test_rendered_true_depth_backprojects_onto_the_surface():
    """Acceptance: undistort + back-project + pose of a synthetic render's true depth lands on the
    rendered surface within 0.5 mm on average, with a strongly distorted endoscope lens."""
    from SurgicalDepthLib.synthetic.renderer import RenderOptions, SurfaceRenderer

    poly = sphere()
    camera = CameraIntrinsics(200, 200, 159.5, 127.5, 320, 256, (-0.3, 0.09, 0.001, -0.001, 0.0))
    pose = looking_anterior([4.0, -75.0, 6.0])
    renderer = SurfaceRenderer(poly, camera, RenderOptions(randomise=False))
    try:
        frame = renderer.render(pose, seed=3)
    finally:
        renderer.close()
    assert frame.valid_fraction > 0.2
    cloud = depth_to_pointcloud(frame.depth_mm, frame.rgb, camera, frame.valid, max_points=None)
    error = surface_distance(poly, transform_points(pose, cloud.points)[::5])
    assert len(cloud) > 0.15 * camera.width * camera.height
    assert error.mean() <= 0.5
    # the undistortion is what makes it exact: skipping it moves points off the surface
    raw = depth_to_pointcloud(frame.depth_mm, frame.rgb, camera, frame.valid, max_points=None, undistort=False)
    raw_error = surface_distance(poly, transform_points(pose, raw.points)[::5])
    assert raw_error.mean() > 4 * error.mean()
    # colours come from the frame, depth scalar is the z of each point
    assert cloud.colors.dtype == np.uint8 and cloud.colors.max() > 0
    assert np.allclose(cloud.depth_mm, cloud.points[:, 2], atol=1e-3)


def test_plane_backprojection_is_exact_and_masks_apply():
    camera = CameraIntrinsics.from_fov(64, 48, 60.0)
    # a fronto-parallel plane at 50 mm with a hole and a masked-out block
    depth = np.full((48, 64), 50.0, np.float32)
    depth[10:14, 10:14] = 0
    depth[20, 20] = np.nan
    mask = np.ones((48, 64), bool)
    mask[30:, 40:] = False
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[..., 1] = 200
    cloud = depth_to_pointcloud(depth, rgb, camera, mask, max_points=None)
    assert len(cloud) == 48 * 64 - 16 - 1 - 18 * 24
    assert np.allclose(cloud.points[:, 2], 50.0)
    u = cloud.points[:, 0] / 50.0 * camera.fx + camera.cx
    assert np.allclose(u, np.round(u), atol=1e-4)  # every point sits on a pixel centre ray
    assert np.all(cloud.colors == [0, 200, 0])


def test_voxel_downsample_meets_budget_and_averages_colours():
    rng = np.random.default_rng(0)
    n = 40000
    pts = np.column_stack([rng.uniform(-20, 20, n), rng.uniform(-20, 20, n), rng.uniform(49.5, 50.5, n)]).astype(
        np.float32
    )
    colors = np.where((pts[:, 0] < 0)[:, None], [255, 0, 0], [0, 0, 255]).astype(np.uint8)
    cloud = PointCloud(pts, colors, pts[:, 2].copy())
    small = voxel_downsample(cloud, 2000)
    assert 500 < len(small) <= 2000
    assert small.points.min(axis=0)[0] >= -20 and small.points.max(axis=0)[0] <= 20
    left = small.points[:, 0] < -2
    assert np.all(small.colors[left] == [255, 0, 0])  # voxels wholly on one side keep that colour
    assert voxel_downsample(cloud, n) is cloud
    with pytest.raises(InputError, match="at least 1"):
        voxel_downsample(cloud, 0)


def test_polydata_and_ply_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    pts = rng.normal(0, 10, (500, 3)).astype(np.float32)
    colors = rng.integers(0, 256, (500, 3)).astype(np.uint8)
    cloud = PointCloud(pts, colors, np.abs(pts[:, 2]))
    poly = polydata_from_cloud(cloud)
    assert poly.GetNumberOfPoints() == 500 and poly.GetNumberOfVerts() == 500
    assert poly.GetPointData().GetScalars().GetName() == RGB_ARRAY
    assert poly.GetPointData().GetArray(DEPTH_ARRAY) is not None
    path = write_ply(cloud, tmp_path / "cloud.ply")
    assert not list(tmp_path.glob(".*"))  # no temporary left beside it
    back = read_ply(path)
    assert len(back) == 500
    assert np.allclose(back.points, pts, atol=1e-4)
    assert np.array_equal(back.colors, colors)
    assert b"red" in path.read_bytes()[:400]


def test_bad_depth_input():
    camera = CameraIntrinsics.from_fov(64, 48, 60.0)
    rgb = np.zeros((48, 64, 3), np.uint8)
    with pytest.raises(InputError, match="differ in size"):
        depth_to_pointcloud(np.ones((40, 64), np.float32), rgb, camera)
    with pytest.raises(InputError, match="Camera intrinsics are for 64x48"):
        depth_to_pointcloud(np.ones((24, 32), np.float32), rgb[:24, :32], camera)
    with pytest.raises(InputError, match="2-D"):
        depth_to_pointcloud(np.ones((48, 64, 1), np.float32), rgb, camera)
