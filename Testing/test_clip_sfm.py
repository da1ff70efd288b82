"""Structure from motion over a clip (pycolmap), checked against the exact poses and depth of a synthetic render."""
from __future__ import annotations

import functools

import numpy as np
import pytest
from adapt_helpers import relative_motion
from small_depth_model import small_bundled_model
from scipy.stats import spearmanr

from SurgicalAICore.errors import InputError, OperationCancelled
from SurgicalAICore.progress import CancelToken
from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics
from SurgicalDepthLib.video.prep import field_stop_mask

pytest.importorskip("pycolmap")

from SurgicalDepthLib.depth.clip_sfm import SfmConfig, clip_motion_from_sfm, reconstruct_clip

FAST = SfmConfig(max_features=1500, overlap=6)


@functools.lru_cache(maxsize=1)
def tube_clip(n_frames: int = 10, width: int = 240, height: int = 192):
    """Looking down a finely textured tube (strong depth range, like a sinus passage) while the camera slides
    sideways and forward: (frames, depths, camera-to-RAS poses, camera)."""
    import vtk

    from SurgicalDepthLib.synthetic.camera_paths import look_at
    from SurgicalDepthLib.synthetic.renderer import RenderOptions, SurfaceRenderer
    from SurgicalDepthLib.synthetic.scenarios import Scenario, Structure
    from SurgicalDepthLib.synthetic.textures import TissueLook

    camera = CameraIntrinsics.from_fov(width, height, 70.0)
    tube = vtk.vtkSphereSource()
    tube.SetRadius(1.0)
    tube.SetThetaResolution(96)
    tube.SetPhiResolution(96)
    scale = vtk.vtkTransform()
    scale.Scale(18, 14, 60)
    shaped = vtk.vtkTransformPolyDataFilter()
    shaped.SetInputConnection(tube.GetOutputPort())
    shaped.SetTransform(scale)
    shaped.Update()
    # the cavity is air: inside two nested closed surfaces (inside an odd number is tissue)
    outer = vtk.vtkSphereSource()
    outer.SetRadius(150.0)
    outer.Update()
    look = TissueLook(mottle_scale_mm=1.5, mottle_amount=0.6, vessel_scale_mm=3.0, vessel_amount=1.0, specular=0.1)
    walls = [Structure("outer", outer.GetOutput(), look), Structure("tube", shaped.GetOutput(), look)]
    scenario = Scenario("tube", walls)
    poses = [look_at([-3 + 0.5 * k, 1 + 0.15 * k, -35 + 0.25 * k], [2, 0, 40], 0.2 + 0.01 * k) for k in range(n_frames)]
    renderer = SurfaceRenderer(scenario, camera, RenderOptions(randomise=False, noise_sigma=0.0))
    shots = [renderer.render(p, seed=0) for p in poses]
    return [s.rgb for s in shots], [s.depth_mm for s in shots], poses, camera


def angle_deg(R: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(R) - 1) / 2, -1, 1))))


@functools.lru_cache(maxsize=1)
def reconstruction():
    frames, _, _, camera = tube_clip()
    messages = []
    rec = reconstruct_clip(frames, camera, field_stop_mask(frames[0]), FAST, progress=lambda f, m: messages.append(f))
    return rec, messages


def test_sparse_points_match_the_rendered_depth_up_to_one_scale():
    frames, depths, _, _ = tube_clip()
    rec, messages = reconstruction()
    assert rec.registered == list(range(len(frames)))
    assert messages == sorted(messages) and messages[-1] == 1.0
    scales = []
    for k, pts in rec.points.items():
        assert len(pts) >= 100
        z = depths[k][np.round(pts[:, 1]).astype(int), np.round(pts[:, 0]).astype(int)]
        assert spearmanr(pts[:, 2], z).correlation > 0.9
        ratio = pts[:, 2] / z
        # one scale for the point, within a few per cent of the true depth
        assert np.median(np.abs(ratio / np.median(ratio) - 1)) < 0.05
        scales.append(np.median(ratio))
    # ... and the same scale in every frame: the reconstruction is consistent over the clip
    assert np.ptp(np.log(scales)) < 0.1


def test_relative_poses_match_the_rendered_poses_up_to_scale():
    _, depths, poses, _ = tube_clip()
    rec, _ = reconstruction()
    motion = clip_motion_from_sfm(rec, FAST)
    assert motion.registered == rec.registered
    assert {p.i for p in motion.pairs} == set(rec.registered)
    for p in motion.pairs:
        R, t = relative_motion(poses[p.i], poses[p.j])
        assert angle_deg(R @ p.R.T) < 0.25 * angle_deg(R) + 0.2
        assert abs(np.linalg.norm(p.t) - 1) < 1e-6
        assert np.degrees(np.arccos(np.clip(p.t @ t / np.linalg.norm(t), -1, 1))) < 10.0
        # the pair's points are in units of its baseline: times the true baseline they are the true depths
        z = depths[p.i][np.round(p.uv[:, 1]).astype(int), np.round(p.uv[:, 0]).astype(int)]
        assert abs(np.median(p.depth * np.linalg.norm(t) / z) - 1) < 0.1


def test_a_static_clip_is_refused_with_one_line():
    frames, _, _, camera = tube_clip()
    with pytest.raises(InputError) as info:
        reconstruct_clip([frames[0]] * 6, camera, field_stop_mask(frames[0]), FAST)
    assert "\n" not in str(info.value)
    assert "registered 0 of 6 frames" in str(info.value)


def test_too_few_frames_and_a_textureless_clip_are_refused():
    frames, _, _, camera = tube_clip()
    with pytest.raises(InputError, match="at least 3 frames"):
        reconstruct_clip(frames[:2], camera, field_stop_mask(frames[0]), FAST)
    grey = [np.full_like(f, 120) for f in frames[:5]]
    with pytest.raises(InputError, match="textureless"):
        reconstruct_clip(grey, camera, np.ones(frames[0].shape[:2], bool), FAST)


def test_cancel_stops_before_the_mapper():
    frames, _, _, camera = tube_clip()
    token = CancelToken()

    def progress(fraction, message):
        if fraction > 0.02:
            token.cancel()

    with pytest.raises(OperationCancelled):
        reconstruct_clip(frames, camera, field_stop_mask(frames[0]), FAST, progress=progress, cancel=token)


@pytest.mark.slow
def test_adaptation_runs_on_the_clip_reconstruction(tmp_path):
    """``motion_source="sfm"``: the adaptation trains on the reconstruction's pairs and says so in the card."""

    from SurgicalDepthLib.depth.adapt import AdaptConfig, adapt_depth_model
    from SurgicalDepthLib.video.sources import ArraySource

    model = small_bundled_model(tmp_path / "small", (96, 120))
    frames, _, _, camera = tube_clip()
    cfg = AdaptConfig(minutes=5.0, max_steps=3, batch_size=2, threads=1, holdout_fraction=0.3,
                      motion_source="sfm", sfm=FAST)
    result = adapt_depth_model(ArraySource(frames), tmp_path / "adapted", camera=camera, model=model, config=cfg)
    training = result.card["training"]
    assert training["motion_source"] == "sfm" and training["steps"] == 3
    assert training["motion"]["registered_frames"] == len(frames)
    assert training["settings"]["sfm"]["overlap"] == FAST.overlap
    assert np.isfinite(result.card["metrics"]["held_back_photometric_after"])
    assert (tmp_path / "adapted" / "model.json").is_file()



def test_python_keeps_its_stop_signal_handlers_after_colmap(tmp_path):
    """Importing and running COLMAP replaces the process's SIGTERM handler; a stop signal after the reconstruction
    (during the training that follows) must still reach Python's handler, which keeps the checkpoint and writes
    nothing half-way (it killed the process outright before). In a fresh process: pycolmap not yet imported."""
    import signal
    import subprocess
    import sys

    frames, _, _, camera = tube_clip()
    np.savez(tmp_path / "clip.npz", frames=np.stack(frames))
    camera.save_json(tmp_path / "camera.json")
    script = f"""
import os, signal, sys
import numpy as np
caught = []
signal.signal(signal.SIGTERM, lambda sig, frame: caught.append(sig))
from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics
from SurgicalDepthLib.depth.clip_sfm import SfmConfig, reconstruct_clip
from SurgicalDepthLib.video.prep import field_stop_mask
frames = list(np.load({str(tmp_path / "clip.npz")!r})["frames"])
camera = CameraIntrinsics.load_json({str(tmp_path / "camera.json")!r})
try:
    reconstruct_clip(frames, camera, field_stop_mask(frames[0]), SfmConfig(**{FAST.__dict__!r}))
except Exception as error:
    print("not reconstructed:", error)
os.kill(os.getpid(), signal.SIGTERM)
print("caught", caught)
"""
    import os

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env,
                          check=False)
    assert done.returncode == 0 and f"caught [{int(signal.SIGTERM)}]" in done.stdout, (done.returncode, done.stderr)
