"""A short synthetic endoscope clip with exact poses and depth, shared by the adaptation tests."""
from __future__ import annotations

import functools

import numpy as np

from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics


@functools.lru_cache(maxsize=2)
def synthetic_clip(n_frames: int = 14, width: int = 160, height: int = 128, seed: int = 5):
    """(frames, depths, poses camera-to-RAS, camera) rendered along a smooth path in the procedural scene."""
    from SurgicalDepthLib.synthetic.camera_paths import PosePlanner, trajectory
    from SurgicalDepthLib.synthetic.renderer import RenderOptions, SurfaceRenderer
    from SurgicalDepthLib.synthetic.scenarios import shapes_scenario

    camera = CameraIntrinsics.from_fov(width, height, 70.0)
    scenario = shapes_scenario(seed=3, n_blobs=6)
    planner = PosePlanner(scenario, camera)
    poses = trajectory(scenario, n_frames, seed=seed, camera=camera, planner=planner, frames_per_key=n_frames)
    renderer = SurfaceRenderer(scenario, camera, RenderOptions(randomise=False, noise_sigma=0.0))
    shots = [renderer.render(p, seed=0) for p in poses]
    return ([s.rgb for s in shots], [s.depth_mm for s in shots], [np.asarray(p) for p in poses], camera)


def relative_motion(pose_i: np.ndarray, pose_j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(R, t) with X_j = R X_i + t for camera-to-world poses."""
    T = np.linalg.inv(pose_j) @ pose_i
    return T[:3, :3], T[:3, 3]
