"""Rectification once per calibration: remap tables for both views, and the way back from the
rectified left view to the left camera's original (distorted) pixel grid.

Depth is returned in the original left image so that every consumer of the monocular depth maps
(point clouds with their own undistortion, registration, overlay) uses stereo depth unchanged.
For each original left pixel we know where it lies in the rectified left image (``cv2.undistortPoints``
with R1, P1) and the factor that turns rectified z into original-camera z (the two frames differ by R1).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from SurgicalAICore.errors import InputError

from SurgicalDepthLib.camera.intrinsics import pixel_grid
from SurgicalDepthLib.stereo.calibration_files import StereoCalibration


@dataclass
class Rectification:
    size: tuple[int, int]
    R1: np.ndarray
    R2: np.ndarray
    P1: np.ndarray
    P2: np.ndarray
    Q: np.ndarray
    left_maps: tuple
    right_maps: tuple
    back_x: np.ndarray       # (H, W) float32: rectified x of each original left pixel
    back_y: np.ndarray
    z_factor: np.ndarray     # (H, W) float32: original-frame z / rectified-frame z along each pixel's ray

    @property
    def focal_px(self) -> float:
        return float(self.P1[0, 0])

    @property
    def baseline_mm(self) -> float:
        return float(-self.P2[0, 3] / self.P2[0, 0])

    def rectify(self, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import cv2

        return (cv2.remap(left, *self.left_maps, cv2.INTER_LINEAR),
                cv2.remap(right, *self.right_maps, cv2.INTER_LINEAR))

    def scaled_maps(self, calibration: StereoCalibration, scale: float) -> tuple[tuple, tuple]:
        """Remap tables that rectify and resize to ``scale`` in one pass (pixel centres at integers)."""
        import cv2

        if scale == 1.0:
            return self.left_maps, self.right_maps
        size = (round(self.size[0] * scale), round(self.size[1] * scale))
        c = calibration
        maps = []
        for camera, R, P in ((c.left, self.R1, self.P1), (c.right, self.R2, self.P2)):
            Ps = P.copy()
            Ps[:2] *= scale
            Ps[:2, 2] += 0.5 * scale - 0.5
            maps.append(cv2.initUndistortRectifyMap(camera.K, camera.dist_coeffs, R, Ps, size, cv2.CV_16SC2))
        return maps[0], maps[1]

    def disparity_range(self, min_depth_mm: float, max_depth_mm: float) -> tuple[float, float]:
        fb = self.focal_px * self.baseline_mm
        return fb / max_depth_mm, fb / min_depth_mm


def rectification_for(calibration: StereoCalibration, alpha: float = 0.0) -> Rectification:
    """Rectify with the file's R1/R2/P1/P2 when it gave them, else ``cv2.stereoRectify`` (zero disparity at
    infinity, ``alpha`` 0 keeps only valid pixels)."""
    import cv2

    c = calibration
    size = c.size
    if c.rectification is not None:
        r = c.rectification
        R1, R2, P1, P2 = (np.asarray(r[k], np.float64) for k in ("R1", "R2", "P1", "P2"))
        Q = np.asarray(r["Q"], np.float64) if "Q" in r else _q_matrix(P1, P2)
    else:
        R1, R2, P1, P2, Q, _, _ = cv2.stereoRectify(c.left.K, c.left.dist_coeffs, c.right.K, c.right.dist_coeffs,
                                                    size, c.R, c.T.reshape(3, 1), flags=cv2.CALIB_ZERO_DISPARITY,
                                                    alpha=alpha)
    if abs(P2[1, 3]) > abs(P2[0, 3]):
        raise InputError("The stereo baseline is vertical (cameras one above the other); rotate the views so "
                         "the baseline runs left to right.")
    if P2[0, 3] >= 0:
        raise InputError("The stereo calibration puts the right camera to the left of the left camera; the "
                         "views or the calibration are swapped.")
    left_maps = cv2.initUndistortRectifyMap(c.left.K, c.left.dist_coeffs, R1, P1, size, cv2.CV_16SC2)
    right_maps = cv2.initUndistortRectifyMap(c.right.K, c.right.dist_coeffs, R2, P2, size, cv2.CV_16SC2)
    u, v = pixel_grid(*size)
    pts = np.stack([u.ravel(), v.ravel()], axis=1).reshape(-1, 1, 2)
    back = cv2.undistortPoints(pts, c.left.K, c.left.dist_coeffs, R=R1, P=P1).reshape(size[1], size[0], 2)
    ray = np.stack([(back[..., 0] - P1[0, 2]) / P1[0, 0], (back[..., 1] - P1[1, 2]) / P1[1, 1],
                    np.ones(back.shape[:2])], axis=-1)
    z_factor = ray @ R1[:, 2]   # X_orig = R1^T X_rect, so z_orig = R1[:, 2] . X_rect
    return Rectification(size, R1, R2, P1, P2, Q, left_maps, right_maps, back[..., 0].astype(np.float32),
                         back[..., 1].astype(np.float32), z_factor.astype(np.float32))


def _q_matrix(P1: np.ndarray, P2: np.ndarray) -> np.ndarray:
    """Disparity-to-depth matrix of a horizontal rectified pair (as cv2.stereoRectify builds it)."""
    f, cx, cy = P1[0, 0], P1[0, 2], P1[1, 2]
    tx = P2[0, 3] / P2[0, 0]
    return np.array([[1, 0, 0, -cx], [0, 1, 0, -cy], [0, 0, 0, f], [0, 0, -1 / tx, (cx - P2[0, 2]) / tx]])


_CACHE: dict = {}


def cached_rectification(calibration: StereoCalibration, alpha: float = 0.0) -> Rectification:
    """Maps are built once per calibration (keyed by its content) and reused for every pair."""
    key = (json_key(calibration), float(alpha))
    rect = _CACHE.get(key)
    if rect is None:
        if len(_CACHE) > 4:
            _CACHE.clear()
        rect = _CACHE[key] = rectification_for(calibration, alpha)
    return rect


def json_key(calibration: StereoCalibration) -> str:
    import json

    return json.dumps(calibration.to_dict(), sort_keys=True)
