"""Intrinsics from checkerboard frames (OpenCV), with the reprojection error and the views that were used."""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Iterable

import numpy as np

from SurgicalAICore.errors import InputError

from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics


@dataclass
class CalibrationResult:
    camera: CameraIntrinsics
    rms_px: float  # reprojection error over all corners (OpenCV's RMS)
    per_view_px: list[float] = field(default_factory=list)
    boards_found: int = 0
    frames_used: list[int] = field(default_factory=list)
    frames_total: int = 0

    def summary(self) -> str:
        return (
            f"Calibrated from {self.boards_found} of {self.frames_total} frames: fx={self.camera.fx:.1f}, "
            f"fy={self.camera.fy:.1f}, cx={self.camera.cx:.1f}, cy={self.camera.cy:.1f}; "
            f"reprojection error {self.rms_px:.3f} px."
        )


def find_checkerboard(rgb: np.ndarray, pattern: tuple[int, int]) -> np.ndarray | None:
    """Sub-pixel inner corners (N, 1, 2) of a ``pattern`` = (columns, rows) inner-corner board, or None."""
    import cv2

    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
    found, corners = cv2.findChessboardCorners(grey, tuple(pattern), flags=flags)
    if not found:
        return None
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 1e-3)
    return cv2.cornerSubPix(grey, corners, (5, 5), (-1, -1), criteria)


def calibrate_checkerboard(
    frames: Iterable[np.ndarray],
    pattern: tuple[int, int],
    square_mm: float,
    min_boards: int = 4,
    progress=None,
    cancel=None,
) -> CalibrationResult:
    """Pinhole + (k1, k2, p1, p2, k3) from frames showing a checkerboard of ``pattern`` inner corners
    (columns, rows) with ``square_mm`` squares. Fails clearly with fewer than ``min_boards`` boards found."""
    import cv2

    from SurgicalAICore.progress import Progress

    if len(pattern) != 2 or min(pattern) < 2:
        raise InputError(
            f"Checkerboard pattern must be (columns, rows) of inner corners, each at least 2; got {pattern}."
        )
    if not square_mm > 0:
        raise InputError(f"Checkerboard square size must be positive, got {square_mm} mm.")
    frames = list(frames)
    steps = Progress.of(progress, cancel)
    board = np.zeros((pattern[0] * pattern[1], 3), np.float32)
    board[:, :2] = np.mgrid[0 : pattern[0], 0 : pattern[1]].T.reshape(-1, 2) * float(square_mm)
    object_points, image_points, used = [], [], []
    size = None
    for i, rgb in enumerate(frames):
        steps.step(0.8 * i / max(len(frames), 1), f"looking for the board in frame {i + 1}/{len(frames)}")
        rgb = np.asarray(rgb)
        if size is None:
            size = (rgb.shape[1], rgb.shape[0])
        elif (rgb.shape[1], rgb.shape[0]) != size:
            raise InputError(f"Calibration frame {i} is {rgb.shape[1]}x{rgb.shape[0]}, others {size[0]}x{size[1]}.")
        corners = find_checkerboard(rgb, pattern)
        if corners is not None:
            object_points.append(board)
            image_points.append(corners)
            used.append(i)
    if len(used) < min_boards:
        raise InputError(
            f"Found a {pattern[0]}x{pattern[1]} checkerboard in {len(used)} of {len(frames)} frames; "
            f"at least {min_boards} are needed. Show the whole board at several angles, well lit, "
            f"and check the inner-corner count."
        )
    steps.step(0.85, "solving for the intrinsics")
    rms, K, dist, rvecs, tvecs = cv2.calibrateCamera(object_points, image_points, size, None, None)
    per_view = []
    for obj, img, r, t in zip(object_points, image_points, rvecs, tvecs, strict=False):
        projected, _ = cv2.projectPoints(obj, r, t, K, dist)
        per_view.append(float(np.sqrt(np.mean(np.sum((projected - img) ** 2, axis=2)))))
    camera = CameraIntrinsics(
        float(K[0, 0]),
        float(K[1, 1]),
        float(K[0, 2]),
        float(K[1, 2]),
        size[0],
        size[1],
        tuple(float(d) for d in dist.ravel()[:5]),
    )
    steps.step(1.0, "calibrated")
    return CalibrationResult(camera, float(rms), per_view, len(used), used, len(frames))
