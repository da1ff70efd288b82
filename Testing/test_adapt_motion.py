"""Camera motion for depth adaptation, checked against the exact poses and depth of synthetic renders."""
from __future__ import annotations

import numpy as np
import pytest
from adapt_helpers import relative_motion, synthetic_clip
from scipy.stats import spearmanr

from SurgicalAICore.errors import InputError
from SurgicalDepthLib.depth.adapt_motion import MotionConfig, estimate_clip_motion, two_view_bundle_adjust
from SurgicalDepthLib.video.prep import field_stop_mask


def angle_deg(R: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(R) - 1) / 2, -1, 1))))


def test_pairwise_motion_matches_the_rendered_poses():
    frames, depths, poses, camera = synthetic_clip()
    motion = estimate_clip_motion(frames, camera, field_stop_mask(frames[0]), MotionConfig(max_gap=3))
    assert len(motion.registered) == len(frames)
    rot, direction, rho = [], [], []
    for p in motion.pairs:
        R, t = relative_motion(poses[p.i], poses[p.j])
        rot.append(angle_deg(R @ p.R.T))
        direction.append(np.degrees(np.arccos(np.clip(p.t @ t / np.linalg.norm(t), -1, 1))))
        uv = np.round(p.uv * [depths[0].shape[1] / motion.camera.width, depths[0].shape[0] / motion.camera.height])
        z = depths[p.i][uv[:, 1].astype(int), uv[:, 0].astype(int)]
        rho.append(spearmanr(p.depth[z > 0], z[z > 0]).correlation)
        assert abs(np.linalg.norm(p.t) - 1) < 1e-6
    true_angles = [angle_deg(relative_motion(poses[p.i], poses[p.j])[0]) for p in motion.pairs]
    assert np.median(rot) < 0.5 * np.median(true_angles) + 1.0
    assert np.median(direction) < 30.0
    assert np.median(rho) > 0.5


def test_bundle_adjustment_recovers_a_perturbed_pose():
    rng = np.random.default_rng(0)
    K = np.array([[200.0, 0, 160], [0, 200.0, 128], [0, 0, 1]])
    X = np.column_stack([rng.uniform(-20, 20, 150), rng.uniform(-15, 15, 150), rng.uniform(30, 80, 150)])
    import cv2

    R = cv2.Rodrigues(np.array([0.02, -0.05, 0.01]))[0]
    t = np.array([0.6, 0.1, 0.2])
    t /= np.linalg.norm(t)
    Y = X @ R.T + t
    uv_i = X[:, :2] / X[:, 2:] * 200 + [160, 128]
    uv_j = Y[:, :2] / Y[:, 2:] * 200 + [160, 128] + rng.normal(0, 0.3, (150, 2))
    R0 = cv2.Rodrigues(np.array([0.03, -0.04, 0.0]))[0]
    t0 = t + np.array([0.1, -0.1, 0.05])
    Rb, tb, z, err = two_view_bundle_adjust(R0, t0, uv_i, uv_j, X[:, 2] * 1.3, K)
    assert angle_deg(Rb @ R.T) < 0.1
    # a 2 % baseline pins the translation direction less tightly than the rotation
    before = np.degrees(np.arccos(np.clip(t0 @ t / np.linalg.norm(t0), -1, 1)))
    assert np.degrees(np.arccos(np.clip(tb @ t, -1, 1))) < min(3.0, before / 2)
    # from 30 % off to the triangulation's own limit: 0.3 px noise on a ~4 px disparity
    assert np.median(np.abs(z / X[:, 2] - 1)) < 0.1
    assert np.sqrt(np.mean(err ** 2)) < 0.5


def test_a_static_clip_is_refused():
    frames, _, _, camera = synthetic_clip()
    with pytest.raises(InputError, match="too little camera motion"):
        estimate_clip_motion([frames[0]] * 10, camera, field_stop_mask(frames[0]))
