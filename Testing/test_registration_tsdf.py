"""TSDF fusion: frames whose depth disagrees meet in one surface; depth maps or clouds; bad input refused."""
import numpy as np
import pytest

from SurgicalAICore.errors import InputError
from SurgicalDepthLib.registration import shapes
from SurgicalDepthLib.registration.fusion import fuse_clouds, fuse_frames
from SurgicalDepthLib.registration.target import target_from_polydata
from SurgicalDepthLib.registration.tsdf import DepthView, cloud_depth_image, fuse_tsdf_clouds, integrate
from organ_view import looking_at


def _wall_views(n=3, wall_z=60.0, size=(48, 64), f=60.0):
    """Depth maps of the plane z = ``wall_z`` (world) from cameras beside each other, turned a little."""
    h, w = size
    views = []
    for k in range(n):
        a = np.radians(6.0 * (k - 1))
        pose = np.eye(4)
        pose[:3, :3] = shapes.rotation_about_axis((0, 1, 0), np.degrees(a))
        pose[:3, 3] = (4.0 * (k - 1), 0.0, 0.0)
        vv, uu = np.mgrid[0:h, 0:w]
        rays = np.stack([(uu - w / 2) / f, (vv - h / 2) / f, np.ones((h, w))], -1) @ pose[:3, :3].T
        depth = (wall_z - pose[2, 3]) / rays[..., 2]  # along the ray's z in the camera, where the ray meets the wall
        views.append(DepthView(depth, f, f, w / 2, h / 2, pose))
    return views


def test_depth_maps_of_a_wall_fuse_onto_the_wall_with_normals_towards_the_cameras():
    surface = integrate(_wall_views(), voxel_mm=0.5)
    assert len(surface.points) > 1000 and surface.n_frames == 3
    assert np.abs(surface.points[:, 2] - 60.0).max() < 0.05, np.abs(surface.points[:, 2] - 60.0).max()
    # out of the wall, towards the cameras at z = 0 (measured 97 %; the rest at the edges of what was seen)
    assert np.mean(surface.normals[:, 2] < -0.99) > 0.95
    assert surface.weights.max() == 3  # the middle of the wall was seen by all three


def _organ_views(n=4, seed=0):
    poly = shapes.organ_polydata(resolution=60)
    surface = shapes.surface_samples(poly, 1.0, seed=2)
    rng = np.random.default_rng(seed)
    clouds, poses = [], []
    for k in range(n):
        direction = (np.cos(0.35 * k), np.sin(0.35 * k), 0.3)
        view = shapes.visible_patch(surface, direction, 0.3)
        pose = looking_at(surface.mean(0), direction, 120.0)
        clouds.append(shapes.apply(np.linalg.inv(pose), view) + rng.normal(0, 0.2, view.shape))
        poses.append(pose)
    return target_from_polydata(poly), clouds, poses


def test_frames_whose_depth_disagrees_meet_in_one_surface():
    """Monocular depth: every frame's depth off by its own few per cent. Cell means keep each frame's surface
    (a layer up to 8 mm thick at 120 mm); the TSDF averages along the rays and lands between them."""
    target, clouds, poses = _organ_views()
    factors = [0.96, 1.04, 0.97, 1.03]
    scaled = [c * k for c, k in zip(clouds, factors, strict=True)]
    cells = np.median(target.closest(fuse_clouds(scaled, poses, voxel_mm=1.0).points)[2])
    tsdf = fuse_frames(scaled, poses)  # the default: TSDF, voxel from the depth
    assert tsdf.normals is not None and tsdf.voxel_mm == pytest.approx(np.median([c[:, 2].mean() for c in scaled])
                                                                       / 85, rel=0.1)
    fused = np.median(target.closest(tsdf.points)[2])
    assert fused < 0.6 * cells, (fused, cells)  # measured 0.64 against 1.25 mm
    exact = np.median(target.closest(fuse_frames(clouds, poses).points)[2])
    assert exact < 0.5, exact  # with exact depth the fused surface lies on the truth


def test_cloud_depth_image_keeps_each_points_depth_at_its_angle():
    rng = np.random.default_rng(3)
    pts = np.c_[rng.uniform(-10, 10, (4000, 2)), np.full(4000, 50.0)]
    pts[:, 2] += 0.1 * pts[:, 0]  # a tilted plane
    depth, fx, _, cx, _ = cloud_depth_image(pts)
    vv, uu = np.nonzero(depth > 0)
    a = (uu - cx) / fx
    expected = 50.0 / (1 - 0.1 * a)  # z on the plane z = 50 + 0.1 x along the ray (a, b, 1)
    assert np.median(np.abs(depth[vv, uu] - expected)) < 0.05
    assert (depth > 0).mean() > 0.5  # the empty pixels between points are filled


def test_a_huge_extent_coarsens_the_voxels_instead_of_failing():
    _, clouds, poses = _organ_views(2)
    far = poses[1].copy()
    far[:3, 3] += (3000.0, 0.0, 0.0)  # a frame 3 m away: a volume of 10^11 voxels at the default size
    surface = fuse_tsdf_clouds(clouds, [poses[0], far], voxel_mm=0.5)
    assert surface.voxel_mm > 0.5 and len(surface.points) > 0


@pytest.mark.parametrize("clouds, poses, kwargs, message", [
    ([np.ones((10, 3))], [np.eye(4)], {}, "at least two"),
    ([np.ones((10, 3)), np.full((10, 3), np.nan)], [np.eye(4)] * 2, {}, "NaN"),
    ([np.ones((10, 3)), -np.ones((10, 3))], [np.eye(4)] * 2, {}, "in front of the camera"),
    ([np.ones((10, 3)), np.ones((10, 3))], [np.eye(4), np.eye(4) + np.eye(4, k=1) * 0.3], {}, "rigid"),
    ([np.ones((10, 3)), np.ones((10, 3))], [np.eye(4)] * 2, {"method": "marching"}, "Unknown fusion method"),
])
def test_bad_tsdf_input_is_one_clear_error(clouds, poses, kwargs, message):
    with pytest.raises(InputError, match=message) as error:
        fuse_frames(clouds, poses, **kwargs)
    assert "\n" not in str(error.value)


def test_a_depth_map_without_depth_is_refused():
    views = _wall_views(2)
    views[1].depth = np.zeros_like(views[1].depth)
    with pytest.raises(InputError, match="no valid depth"):
        integrate(views)
