"""Synthetic stereo pairs with exact depth: one scene rendered from two cameras a baseline apart (the right
camera shifted along the left camera's x axis), each with the same endoscope-like lens distortion.
Exact ground truth for the matcher, the rectification and the depth conversion."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics
from SurgicalDepthLib.stereo.calibration_files import StereoCalibration

# mild barrel distortion, typical of a rigid stereo laparoscope after its own optics
ENDOSCOPE_DISTORTION = (-0.12, 0.05, 0.0005, -0.0004, 0.0)


@dataclass
class SyntheticStereoPair:
    left: np.ndarray          # (H, W, 3) uint8, distorted left view
    right: np.ndarray
    depth_mm: np.ndarray      # exact z-depth on the left view's (distorted) pixel grid, 0 = nothing
    calibration: StereoCalibration


def stereo_camera(width: int = 320, height: int = 256, vertical_fov_deg: float = 60.0,
                  distortion=ENDOSCOPE_DISTORTION) -> CameraIntrinsics:
    return CameraIntrinsics.from_fov(width, height, vertical_fov_deg, distortion)


def render_stereo_pair(scenario, camera: CameraIntrinsics, pose_left: np.ndarray, baseline_mm: float = 5.0,
                       seed: int = 0, right_camera: CameraIntrinsics | None = None) -> SyntheticStereoPair:
    """Render ``scenario`` from ``pose_left`` (camera-to-RAS) and from the right camera ``baseline_mm`` along
    the left camera's x axis. Appearance is fixed (no per-frame randomisation), so both views see one scene."""
    from SurgicalDepthLib.synthetic.renderer import RenderOptions, SurfaceRenderer

    right_camera = right_camera or camera
    options = RenderOptions(randomise=False, field_stop=False, noise_sigma=0.004, blur_sigma_px=0.4, exposure=0.45,
                            specular_scale=0.3, gamma=1.8)
    shift = np.eye(4)
    shift[0, 3] = baseline_mm
    views = []
    for cam, pose, view_seed in ((camera, pose_left, seed), (right_camera, pose_left @ shift, seed + 1)):
        renderer = SurfaceRenderer(scenario, cam, options, check_inside=False)
        try:
            views.append(renderer.render(pose, seed=view_seed))
        finally:
            renderer.close()
    calibration = StereoCalibration(camera, right_camera, np.eye(3), np.array([-baseline_mm, 0.0, 0.0]))
    return SyntheticStereoPair(views[0].rgb, views[1].rgb, views[0].depth_mm, calibration)


def cavity_pair(width: int = 320, height: int = 256, baseline_mm: float = 5.0, seed: int = 0,
                distortion=ENDOSCOPE_DISTORTION) -> SyntheticStereoPair:
    """A pair inside the procedural chamber (:func:`shapes_scenario`), looking at its wall 40-70 mm away:
    the working distance of a laparoscope."""
    from SurgicalDepthLib.synthetic.camera_paths import look_at
    from SurgicalDepthLib.synthetic.scenarios import shapes_scenario

    scenario = shapes_scenario(seed=seed, n_blobs=10)
    rng = np.random.default_rng(seed)
    for _ in range(100):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        position = -direction * rng.uniform(0.0, 8.0)
        pose = look_at(position, position + direction * 50.0, rng.uniform(-np.pi, np.pi))
        if not scenario.inside_tissue(position) and not scenario.inside_tissue(position + baseline_mm * pose[:3, 0]):
            break
    return render_stereo_pair(scenario, stereo_camera(width, height, distortion=distortion), pose, baseline_mm, seed)
