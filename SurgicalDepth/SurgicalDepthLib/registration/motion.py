"""Camera motion model for frame-to-frame tracking: damped constant velocity with a bound per frame.

The tracker starts each frame's ICP from :meth:`MotionModel.predict` and judges a fit by how far it moved
from that prediction; only trusted poses update the model, so a run of bad frames cannot drag it along
(the drift the single-frame tracker followed to 133 mm). An external tracker pose, when there is one,
replaces the prediction.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from SurgicalAICore.errors import InputError


def check_rigid(matrix, what: str = "tracker pose", tolerance: float = 1e-3) -> np.ndarray:
    """A finite 4x4 rigid transform (rotation + translation), else one clear InputError."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (4, 4) or not np.all(np.isfinite(m)):
        raise InputError(f"The {what} must be a finite 4x4 matrix.")
    if not np.allclose(m[3], [0, 0, 0, 1], atol=tolerance):
        raise InputError(f"The {what} is not a rigid transform (its last row is not 0 0 0 1).")
    R = m[:3, :3]
    if np.abs(R.T @ R - np.eye(3)).max() > tolerance or np.linalg.det(R) < 0:
        raise InputError(f"The {what} is not a rigid transform (its 3x3 part is not a rotation: scaled, sheared "
                         "or mirrored).")
    return m


def _split(m: np.ndarray):
    s = float(np.cbrt(np.linalg.det(m[:3, :3])))
    return s, m[:3, :3] / s, m[:3, 3]


class MotionModel:
    """Constant velocity of the camera-to-CT pose, bounded to ``max_mm`` / ``max_deg`` per frame, fading by
    ``fade`` for every frame without a trusted pose. ``damping`` scales the predicted step: 1 follows steady
    motion; below 1 the prediction lags it (0.5 left every frame of a steady sweep half a step behind, so its
    first fit was judged on a larger move and often needed a second look). ``guessed``: ``pose`` is a user's
    start guess, not a tracked pose, so the first trusted pose sets no velocity (the guess's error is not
    motion: taken as velocity, a 5 deg / 5 mm start error sent the next frame's ICP 10 deg off, into a
    wrong fit down a sinus passage)."""

    def __init__(self, pose: np.ndarray, *, max_mm: float = 8.0, max_deg: float = 8.0, damping: float = 1.0,
                 fade: float = 0.5, guessed: bool = False):
        self.last_good = np.asarray(pose, float).copy()
        self.guessed = guessed
        self.max_mm, self.max_deg, self.damping, self.fade = max_mm, max_deg, damping, fade
        self.rotvec = np.zeros(3)    # world-frame rotation per frame
        self.shift = np.zeros(3)     # world-frame translation per frame of the point at the origin
        self.frames_since_good = 0

    def predict(self) -> np.ndarray:
        """Expected pose of the next frame: the last good pose moved on by the damped velocity."""
        steps = self.frames_since_good + 1
        R = Rotation.from_rotvec(self.damping * steps * self.rotvec).as_matrix()
        s, R0, t0 = _split(self.last_good)
        out = np.eye(4)
        out[:3, :3] = s * (R @ R0)
        out[:3, 3] = R @ t0 + self.damping * steps * self.shift
        return out

    def reach(self) -> tuple[float, float]:
        """(mm, deg) the camera may have moved since the last good pose, at the bounded speed."""
        steps = self.frames_since_good + 1
        return self.max_mm * steps, self.max_deg * steps

    def update(self, pose: np.ndarray) -> None:
        """A trusted pose: it becomes the last good one and sets the (clamped) velocity."""
        pose = np.asarray(pose, float)
        if self.guessed:
            self.guessed = False
            self.last_good, self.frames_since_good = pose.copy(), 0
            self.rotvec, self.shift = np.zeros(3), np.zeros(3)
            return
        steps = self.frames_since_good + 1
        _, Rn, tn = _split(pose)
        _, Ro, to = _split(self.last_good)
        dR = Rn @ Ro.T
        rotvec = Rotation.from_matrix(dR).as_rotvec() / steps
        shift = (tn - dR @ to) / steps
        deg = np.degrees(np.linalg.norm(rotvec))
        if deg > self.max_deg:
            rotvec *= self.max_deg / deg
        mm = np.linalg.norm(shift)
        if mm > self.max_mm:
            shift *= self.max_mm / mm
        self.rotvec, self.shift = rotvec, shift
        self.last_good = pose.copy()
        self.frames_since_good = 0

    def miss(self) -> None:
        """A frame without a trusted pose: the model keeps the last good one, and its velocity fades."""
        self.frames_since_good += 1
        self.rotvec = self.rotvec * self.fade
        self.shift = self.shift * self.fade
