"""Multi-frame fusion: registered frames become one surface that covers more than any single frame."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from SurgicalAICore.errors import InputError
from SurgicalDepthLib.registration import shapes
from SurgicalDepthLib.registration.fusion import fuse_clouds
from organ_view import looking_at

ROOT = Path(__file__).resolve().parents[1]


def _frames(n=3, noise=0.3):
    """The synthetic organ seen by ``n`` cameras around it: camera-frame clouds (z along the view, mm) with
    their camera-to-CT poses and the true surface patch each saw."""
    poly = shapes.organ_polydata(resolution=60)
    surface = shapes.surface_samples(poly, 1.0, seed=2)
    rng = np.random.default_rng(0)
    clouds, poses, views = [], [], []
    for k in range(n):
        direction = [np.cos(0.6 * k), np.sin(0.6 * k), 0.2]
        view = shapes.visible_patch(surface, direction, 0.3)
        pose = looking_at(view.mean(0), direction)
        clouds.append(shapes.apply(np.linalg.inv(pose), view) + rng.normal(0, noise, view.shape))
        poses.append(pose)
        views.append(view)
    return poly, clouds, poses, views


def test_fusion_covers_all_views_and_averages_noise():
    poly, clouds, poses, views = _frames()
    fused = fuse_clouds(clouds, poses, voxel_mm=2.0)
    from SurgicalDepthLib.registration.target import target_from_polydata

    target = target_from_polydata(poly)
    d_fused = target.closest(fused.points)[2]
    d_single = target.closest(shapes.apply(poses[0], clouds[0]))[2]
    assert np.median(d_fused) < np.median(d_single)       # averaging reduces the noise
    # every view's points have a fused surfel near them: the union, not one cone
    from scipy.spatial import cKDTree

    tree = cKDTree(fused.points)
    for v in views:
        assert np.percentile(tree.query(v)[0], 95) < 2.5
    assert fused.frames.max() >= 2                          # overlapping views met in some cells


def test_align_scale_undoes_each_frames_depth_scale():
    """Monocular depth of every frame off by its own factor (0.85-1.15): the frames fused as they are form a
    smeared double surface; fitted along their rays, the factors come back within 2 % and the surface is thin."""
    from SurgicalDepthLib.registration.fusion import align_depth_scales
    from SurgicalDepthLib.registration.target import target_from_polydata

    poly, clouds, poses, _ = _frames(n=4, noise=0.2)
    factors = np.array([1.0, 0.85, 1.15, 0.92])
    scaled = [c * f for c, f in zip(clouds, factors, strict=True)]
    found = align_depth_scales(scaled, poses)
    assert np.allclose(found * factors, 1.0, atol=0.02), found * factors
    target = target_from_polydata(poly)
    plain = np.median(target.closest(fuse_clouds(scaled, poses, voxel_mm=1.0).points)[2])
    aligned = fuse_clouds(scaled, poses, voxel_mm=1.0, align_scale=True)
    assert np.allclose(aligned.scales, found)
    assert np.median(target.closest(aligned.points)[2]) < 0.5 * plain, plain


@pytest.mark.parametrize("clouds, poses, message", [
    ([np.zeros((10, 3))], [np.eye(4)], "at least two"),
    ([np.ones((10, 3)), np.full((10, 3), np.nan)], [np.eye(4), np.eye(4)], "NaN"),
    ([np.ones((10, 3)), np.ones((10, 3))], [np.eye(4), np.eye(4) + np.eye(4, k=1) * 0.3], "rigid"),
    ([np.ones((10, 3)), np.ones((10, 3))], [np.eye(4)], "one pose per cloud"),
])
def test_bad_fusion_input_is_one_clear_error(clouds, poses, message):
    with pytest.raises(InputError, match=message):
        fuse_clouds(clouds, poses)


def test_fuse_command_writes_a_ply_and_refuses_one_frame(tmp_path):
    _, clouds, poses, _ = _frames(2)
    files = []
    for i, c in enumerate(clouds):
        files.append(tmp_path / f"c{i}.npy")
        np.save(files[-1], c)
    np.save(tmp_path / "poses.npy", np.stack(poses))
    env = {"PYTHONPATH": f"{ROOT}:{ROOT / 'SegmentationAI'}:{ROOT / 'SurgicalDepth'}", "OMP_NUM_THREADS": "1",
           "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "surgicalai.cli", "fuse", *map(str, files), "--poses", str(tmp_path / "poses.npy"),
           "-o", str(tmp_path / "fused.ply")]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    from SurgicalDepthLib.depth.pointcloud import read_ply

    assert len(read_ply(tmp_path / "fused.ply").points) > 0.5 * max(len(c) for c in clouds)
    assert "(tsdf, " in run.stdout  # the default
    import vtk

    reader = vtk.vtkPLYReader()
    reader.SetFileName(str(tmp_path / "fused.ply"))
    reader.Update()
    assert reader.GetOutput().GetPointData().GetNormals() is not None  # a TSDF surface keeps its normals
    run = subprocess.run([*cmd[:-1], str(tmp_path / "cells.ply"), "--method", "cells", "--voxel", "2"],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=300, check=False)
    assert run.returncode == 0 and "(cells, 2 mm)" in run.stdout, run.stderr
    run = subprocess.run([*cmd[:-1], str(tmp_path / "bad.ply"), "--trunc", "0"], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=300, check=False)
    assert run.returncode == 2 and "--trunc must be a positive" in run.stderr and not (tmp_path / "bad.ply").exists()
    run = subprocess.run([*cmd[:-1], str(tmp_path / "aligned.ply"), "--align-scale"], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=300, check=False)
    assert run.returncode == 0 and "depth scales 1.000, " in run.stdout, run.stderr
    np.save(tmp_path / "one.npy", np.stack(poses[:1]))
    run = subprocess.run([*cmd[:4], str(files[0]), "--poses", str(tmp_path / "one.npy"), "-o",
                          str(tmp_path / "single.ply")], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=300, check=False)
    assert run.returncode == 2 and "at least two" in run.stderr
    assert not (tmp_path / "single.ply").exists()
