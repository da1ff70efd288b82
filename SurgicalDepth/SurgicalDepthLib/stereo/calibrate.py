"""Stereo calibration from checkerboard pairs (``cv2.stereoCalibrate``): reprojection error reported,
views that fit badly named."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from SurgicalAICore.errors import InputError

from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics
from SurgicalDepthLib.camera.calibration import find_checkerboard
from SurgicalDepthLib.stereo.calibration_files import StereoCalibration


@dataclass
class StereoCalibrationResult:
    calibration: StereoCalibration
    rms_px: float                                   # OpenCV's RMS over both views, pairs used
    per_pair_px: list[float] = field(default_factory=list)
    pairs_used: list[int] = field(default_factory=list)
    pairs_total: int = 0
    bad_pairs: list[int] = field(default_factory=list)   # boards found but left out: they do not fit the rig

    def summary(self) -> str:
        c = self.calibration
        text = (f"Stereo calibration from {len(self.pairs_used)} of {self.pairs_total} pairs: baseline "
                f"{c.baseline_mm:.2f} mm, reprojection error {self.rms_px:.3f} px")
        if self.bad_pairs:
            text += "; left out as not fitting the rig: pairs " + ", ".join(str(i) for i in self.bad_pairs)
        return text + "."


def _board(pattern: tuple[int, int], square_mm: float) -> np.ndarray:
    board = np.zeros((pattern[0] * pattern[1], 3), np.float32)
    board[:, :2] = np.mgrid[0:pattern[0], 0:pattern[1]].T.reshape(-1, 2) * float(square_mm)
    return board


def calibrate_stereo(pairs, pattern: tuple[int, int], square_mm: float, min_pairs: int = 4, fix_k3: bool = True,
                     progress=None, cancel=None) -> StereoCalibrationResult:
    """Both intrinsics and the left-to-right transform from ``pairs`` of (left, right) images showing a
    checkerboard with ``pattern`` = (columns, rows) inner corners and ``square_mm`` squares. A pair counts
    only when the whole board is found in both views. ``fix_k3`` keeps the sixth-order radial term at 0:
    a handful of board views rarely determines it, and left free it lets the fit run away."""
    import cv2

    from SurgicalAICore.progress import Progress

    if len(pattern) != 2 or min(pattern) < 2:
        raise InputError(f"Checkerboard pattern must be (columns, rows) of inner corners, each at least 2; "
                         f"got {pattern}.")
    if not square_mm > 0:
        raise InputError(f"Checkerboard square size must be positive, got {square_mm} mm.")
    pairs = list(pairs)
    steps = Progress.of(progress, cancel)
    board = _board(pattern, square_mm)
    objects, lefts, rights, used, size = [], [], [], [], None
    for i, (left_view, right_view) in enumerate(pairs):
        steps.step(0.8 * i / max(len(pairs), 1), f"looking for the board in pair {i + 1}/{len(pairs)}")
        left, right = np.asarray(left_view), np.asarray(right_view)
        if left.shape[:2] != right.shape[:2]:
            raise InputError(f"Calibration pair {i}: left {left.shape[1]}x{left.shape[0]}, right "
                             f"{right.shape[1]}x{right.shape[0]}; both views must have one size.")
        if size is None:
            size = (left.shape[1], left.shape[0])
        elif (left.shape[1], left.shape[0]) != size:
            raise InputError(f"Calibration pair {i} is {left.shape[1]}x{left.shape[0]}, others {size[0]}x{size[1]}.")
        cl, cr = find_checkerboard(left, pattern), find_checkerboard(right, pattern)
        if cl is not None and cr is not None:
            objects.append(board)
            lefts.append(cl)
            rights.append(cr)
            used.append(i)
    if len(used) < min_pairs:
        raise InputError(f"Found the {pattern[0]}x{pattern[1]} checkerboard in both views of {len(used)} of "
                         f"{len(pairs)} pairs; at least {min_pairs} are needed.")
    steps.step(0.82, "calibrating each camera")
    k3 = cv2.CALIB_FIX_K3 if fix_k3 else 0
    _, K1, D1, _, _ = cv2.calibrateCamera(objects, lefts, size, None, None, flags=k3)
    _, K2, D2, _, _ = cv2.calibrateCamera(objects, rights, size, None, None, flags=k3)
    steps.step(0.9, "solving for the pair")
    # first with each camera's own intrinsics fixed: a pair that cannot fit the rig (a board moved between
    # the two exposures, a wrong detection) then shows as an outlier instead of bending the intrinsics
    first = _stereo(objects, lefts, rights, K1, D1, K2, D2, size, cv2.CALIB_FIX_INTRINSIC)[-1]
    limit = max(3.0 * float(np.median(first)), 1.0)
    keep = [k for k, e in enumerate(first) if e <= limit]
    bad = [used[k] for k, e in enumerate(first) if e > limit]
    if len(keep) < min_pairs:
        raise InputError(f"Only {len(keep)} of {len(used)} board pairs fit one stereo rig (pairs "
                         f"{', '.join(map(str, bad))} do not); at least {min_pairs} are needed.")
    objects, lefts, rights = ([x[k] for k in keep] for x in (objects, lefts, rights))
    rms, K1, D1, K2, D2, R, T, per_pair = _stereo(objects, lefts, rights, K1, D1, K2, D2, size,
                                                  cv2.CALIB_USE_INTRINSIC_GUESS | k3)
    used = [used[k] for k in keep]
    cams = [CameraIntrinsics(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), size[0], size[1],
                             tuple(float(d) for d in D.ravel()[:5])) for K, D in ((K1, D1), (K2, D2))]
    steps.step(1.0, "calibrated")
    return StereoCalibrationResult(StereoCalibration(cams[0], cams[1], R, T.ravel()), float(rms), per_pair, used,
                                   len(pairs), bad)


def _stereo(objects, lefts, rights, K1, D1, K2, D2, size, flags):
    """cv2.stereoCalibrateExtended; the per-pair error is the RMS over both views of that pair."""
    import cv2

    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 100, 1e-6)
    out = cv2.stereoCalibrateExtended(objects, lefts, rights, K1, D1, K2, D2, size, None, None,
                                      flags=flags, criteria=criteria)
    rms, K1, D1, K2, D2, R, T = out[:7]
    per_view = np.asarray(out[-1], float).reshape(-1, 2)
    return float(rms), K1, D1, K2, D2, R, T, [float(e) for e in np.sqrt(np.mean(per_view ** 2, axis=1))]
