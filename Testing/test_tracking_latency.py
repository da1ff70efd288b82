"""Per-frame cost of the real-time path: the tracker's update, the cloud's voxel downsampling, the PLY writer.

The real latency numbers are in docs/BENCHMARKS_latency.md (benchmarks/bench_latency.py); here a generous
bound in CPU time (steadier than wall time on a shared machine) catches a regression of several times.
"""
import time

import numpy as np
from scipy.spatial import cKDTree

from SurgicalDepthLib.depth.pointcloud import PointCloud, _voxel_reduce, read_ply, voxel_downsample, write_ply
from SurgicalDepthLib.registration import shapes
from SurgicalDepthLib.registration.icp import pose_error
from SurgicalDepthLib.registration.target import target_from_polydata
from SurgicalDepthLib.registration.tracking import FrameTracker


def test_tracker_update_is_fast_and_accurate_on_small_motion():
    poly = shapes.organ_polydata()
    target = target_from_polydata(poly, name="organ")
    view = shapes.visible_patch(shapes.surface_samples(poly, 0.5, seed=3), (1, 0.3, 0.2), 0.45)
    rng = np.random.default_rng(4)
    view = view[rng.choice(len(view), min(5000, len(view)), replace=False)]
    truth = np.eye(4)
    tracker = FrameTracker(target, truth, max_points=5000)
    assert target._kdtree is not None, "the k-d tree is built with the tracker, not on a frame that needs it"
    cpu = []
    for _ in range(12):
        truth = shapes.perturbation(1.0, 1.0, view.mean(0), rng) @ truth  # ~30 mm/s and 30 deg/s at 30 frames/s
        cloud = shapes.apply(np.linalg.inv(truth), view)
        c0 = time.process_time()
        r = tracker.update(cloud)
        cpu.append(time.process_time() - c0)
        assert r.state == "trusted" and not r.relocalised
        assert max(pose_error(r.matrix, truth)[:2]) < 0.2
    # ~10-15 ms on a quiet 2-core machine (docs/BENCHMARKS_registration.md); 100 ms allows a loaded one
    assert np.median(cpu[1:]) < 0.1, f"median update CPU time {1000 * np.median(cpu[1:]):.0f} ms"


def _reference_voxel_means(cloud: PointCloud, voxel: float) -> np.ndarray:
    """Mean point of each occupied voxel, the plain way (a sort of the voxel keys)."""
    keys = np.floor(cloud.points / voxel).astype(np.int64)
    _, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    sums = np.zeros((inverse.max() + 1, 3))
    np.add.at(sums, inverse, cloud.points.astype(np.float64))
    return sums / np.bincount(inverse)[:, None]


def test_voxel_downsample_matches_plain_voxel_means_and_the_budget():
    rng = np.random.default_rng(0)
    uv = rng.uniform(-40, 40, (60000, 2))
    pts = np.column_stack([uv, 60 + 0.01 * (uv ** 2).sum(1)]).astype(np.float32)  # a curved surface ahead
    cloud = PointCloud(pts, rng.integers(0, 255, (len(pts), 3)).astype(np.uint8), pts[:, 2].copy())
    out = voxel_downsample(cloud, 8000)
    assert 0.5 * 8000 < len(out) <= 8000
    for edge in (0.3, 0.8, 2.5):  # the fast reduction (flags and a look-up table) against the plain one
        fast = _voxel_reduce(cloud, edge)
        ref = _reference_voxel_means(cloud, edge)
        assert len(fast) == len(ref)
        gap, match = cKDTree(ref).query(fast.points)
        assert gap.max() < 1e-4 and len(np.unique(match)) == len(ref)  # the same means, one to one


def test_ply_round_trip_binary_and_ascii(tmp_path):
    rng = np.random.default_rng(1)
    pts = rng.normal(0, 30, (500, 3)).astype(np.float32)
    cloud = PointCloud(pts, rng.integers(0, 255, (500, 3)).astype(np.uint8), pts[:, 2].copy())
    for binary in (True, False):
        path = write_ply(cloud, tmp_path / f"c{int(binary)}.ply", binary=binary)
        back = read_ply(path)
        np.testing.assert_allclose(back.points, cloud.points, rtol=1e-6)
        np.testing.assert_array_equal(back.colors, cloud.colors)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c0.ply", "c1.ply"]  # no temporaries left
