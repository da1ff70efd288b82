"""Semi-global matching on rectified pairs, left-right consistency, confidence, and metric depth in
the left camera's original pixel grid.

Holes stay holes: a pixel without a consistent match has depth 0 and confidence 0; no depth is filled
in. Disparities are sub-pixel (OpenCV's 1/16 px). ``scale`` < 1 matches downscaled views (the speed
knob); the disparity is brought back to full resolution before depth.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from SurgicalAICore.errors import InputError

from SurgicalDepthLib.stereo.calibration_files import StereoCalibration
from SurgicalDepthLib.stereo.rectify import Rectification, cached_rectification

MODES = {"sgbm": 0, "hh": 1, "3way": 2, "hh4": 3}


@dataclass(frozen=True)
class StereoSettings:
    min_depth_mm: float = 20.0
    max_depth_mm: float = 200.0
    scale: float = 1.0             # match at this fraction of the resolution
    block_size: int = 5
    mode: str = "3way"
    uniqueness: int = 5
    lr_max_diff_px: float = 1.0    # left-right check tolerance (full-resolution pixels)
    speckle_window: int = 100
    smoothing: str = "none"        # "guided": edge-aware filtering of the disparity, valid pixels only
    alpha: float = 0.0             # rectification: 0 keeps only valid pixels

    def validate(self) -> None:
        if not 0 < self.min_depth_mm < self.max_depth_mm:
            raise InputError(f"Stereo depth range must satisfy 0 < min < max, got {self.min_depth_mm}-"
                             f"{self.max_depth_mm} mm.")
        if not 0.1 <= self.scale <= 1.0:
            raise InputError(f"Stereo matching scale must be within 0.1-1, got {self.scale}.")
        if self.mode not in MODES:
            raise InputError(f"Stereo matching mode must be one of {', '.join(MODES)}, got {self.mode!r}.")
        if self.block_size < 1 or self.block_size % 2 == 0:
            raise InputError(f"Stereo block size must be odd and positive, got {self.block_size}.")
        if self.smoothing not in ("none", "guided"):
            raise InputError(f"Stereo smoothing must be 'none' or 'guided', got {self.smoothing!r}.")


@dataclass
class StereoDepth:
    depth_mm: np.ndarray       # (H, W) float32, original left pixel grid, z in the left camera frame, 0 = none
    confidence: np.ndarray     # (H, W) float32 in [0, 1], same grid
    disparity: np.ndarray      # float32, rectified left grid at the matching scale (px there), NaN = none
    timings: dict = field(default_factory=dict)


def _grey(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb


def _matcher(settings: StereoSettings, min_disp: int, num_disp: int):
    import cv2

    b = settings.block_size
    return cv2.StereoSGBM_create(minDisparity=min_disp, numDisparities=num_disp, blockSize=b,
                                 P1=8 * b * b, P2=32 * b * b, disp12MaxDiff=-1, uniquenessRatio=settings.uniqueness,
                                 speckleWindowSize=settings.speckle_window, speckleRange=2,
                                 preFilterCap=31, mode=MODES[settings.mode])


def _search_range(rect: Rectification, settings: StereoSettings) -> tuple[int, int]:
    lo, hi = rect.disparity_range(settings.min_depth_mm, settings.max_depth_mm)
    lo, hi = lo * settings.scale, hi * settings.scale
    min_disp = int(np.floor(lo)) - 1
    num = int(np.ceil((hi - min_disp + 1) / 16.0)) * 16
    return min_disp, max(num, 16)


def _disparities(left: np.ndarray, right: np.ndarray, settings: StereoSettings, min_disp: int, num: int):
    """Left and right disparity maps (float32, px at the matching scale, NaN where SGBM found none).

    OpenCV leaves the first ``min_disp + num`` columns unmatched; padding both views on that side lets
    those columns match too (a match into the padding fails the left-right check)."""
    import cv2

    matcher = _matcher(settings, min_disp, num)
    pad = max(min_disp + num, 0)

    def match(a, b):
        a = cv2.copyMakeBorder(a, 0, 0, pad, 0, cv2.BORDER_REPLICATE)
        b = cv2.copyMakeBorder(b, 0, 0, pad, 0, cv2.BORDER_REPLICATE)
        return matcher.compute(a, b)[:, pad:].astype(np.float32) / 16.0

    d_left = match(left, right)
    # the right view's disparity: match the mirrored pair, so disparities stay positive
    d_right = match(np.ascontiguousarray(right[:, ::-1]), np.ascontiguousarray(left[:, ::-1]))[:, ::-1]
    x = np.arange(left.shape[1], dtype=np.float32)[None, :]
    # a match that lands in the padding is no match: the point is outside the other view
    # the ends of the search range are where SGBM parks pixels it cannot place: no match either
    lo, hi = min_disp + 0.5, min_disp + num - 1.5
    d_left[(d_left < lo) | (d_left > hi) | (x - d_left < 0)] = np.nan
    d_right[(d_right < lo) | (d_right > hi) | (x + d_right > left.shape[1] - 1)] = np.nan
    return d_left, np.ascontiguousarray(d_right)


def left_right_difference(d_left: np.ndarray, d_right: np.ndarray) -> np.ndarray:
    """|d_L(x) - d_R(x - d_L(x))| per left pixel; NaN where either is missing."""
    h, w = d_left.shape
    x = np.arange(w, dtype=np.float32)[None, :]
    xr = np.rint(x - np.nan_to_num(d_left, nan=-1e6)).astype(np.int64)
    inside = (xr >= 0) & (xr < w) & np.isfinite(d_left)
    rows = np.broadcast_to(np.arange(h)[:, None], (h, w))
    other = np.full_like(d_left, np.nan)
    other[inside] = d_right[rows[inside], xr[inside]]
    return np.abs(d_left - other)


def guided_smooth(disparity: np.ndarray, guide: np.ndarray, radius: int = 4, eps: float = 4.0) -> np.ndarray:
    """Edge-aware smoothing (He et al.'s guided filter, grey guide) of the valid disparities only: holes are
    excluded by normalised filtering and stay holes."""
    import cv2

    valid = np.isfinite(disparity).astype(np.float32)
    d = np.nan_to_num(disparity).astype(np.float32)
    g = guide.astype(np.float32)
    k = (2 * radius + 1, 2 * radius + 1)

    def mean(a):
        return cv2.boxFilter(a, -1, k, normalize=True, borderType=cv2.BORDER_REFLECT)

    n = np.maximum(mean(valid), 1e-6)
    mg, md = mean(g * valid) / n, mean(d) / n   # d is already 0 at holes
    cov = mean(g * d) / n - mg * md
    var = mean(g * g * valid) / n - mg * mg
    a = cov / (var + eps)
    b = md - a * mg
    out = mean(a) * g + mean(b)
    return np.where(valid > 0, out, np.nan).astype(np.float32)


def _to_original(rect: Rectification, disparity: np.ndarray, confidence: np.ndarray, scale: float):
    """Disparity and confidence on the rectified left grid at ``scale`` -> depth (mm) and confidence on the
    original left grid. Interpolates disparity inside valid regions, takes the nearest at their borders and
    never across a hole."""
    import cv2

    if scale == 1.0:
        bx, by = rect.back_x, rect.back_y
    else:
        bx, by = (rect.back_x + 0.5) * scale - 0.5, (rect.back_y + 0.5) * scale - 0.5
    valid = np.isfinite(disparity)
    packed = np.dstack([np.where(valid, disparity, 0), valid, confidence]).astype(np.float32)
    lin = cv2.remap(packed[..., :2], bx, by, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    near = cv2.remap(packed, bx, by, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    use_lin = (lin[..., 1] > 0.999) & (np.abs(lin[..., 0] - near[..., 0]) < 1.0)
    disp = np.where(use_lin, lin[..., 0], np.where(near[..., 1] > 0, near[..., 0], 0.0)) / scale
    ok = disp > 0
    depth = np.zeros(disp.shape, np.float32)
    depth[ok] = (rect.focal_px * rect.baseline_mm) / disp[ok] * rect.z_factor[ok]
    return depth, np.where(ok, near[..., 2], 0.0).astype(np.float32)


def _coverage(maps, size: tuple[int, int]) -> np.ndarray:
    """Pixels of a rectified view that image the camera's sensor (not the black fill of the remap)."""
    import cv2

    ones = np.full((size[1], size[0]), 255, np.uint8)
    cover = cv2.remap(ones, *maps, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0) == 255
    return cv2.erode(cover.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0


_DARK = 12


def _usable(grey: np.ndarray, cover: np.ndarray, dark: int = _DARK, flat: float = 0.25) -> np.ndarray:
    """Pixels worth matching: on the sensor, not in the black field stop, not textureless (local std in
    grey levels at least ``flat``): two black or flat patches agree with each other at any disparity."""
    import cv2

    g = grey.astype(np.float32)
    mean = cv2.blur(g, (5, 5))
    std = np.sqrt(np.maximum(cv2.blur(g * g, (5, 5)) - mean * mean, 0))
    return cover & (mean > dark) & (g > dark) & (std >= flat)


class StereoMatcher:
    """Calibration + settings -> :meth:`compute` (left, right) -> :class:`StereoDepth`."""

    def __init__(self, calibration: StereoCalibration, settings: StereoSettings | None = None):
        self.calibration = calibration
        self.settings = settings or StereoSettings()
        self.settings.validate()
        self.rect = cached_rectification(calibration, self.settings.alpha)
        self.range = _search_range(self.rect, self.settings)
        self.maps = self.rect.scaled_maps(calibration, self.settings.scale)
        self.cover = [_coverage(m, self.rect.size) for m in self.maps]

    def check_pair(self, left: np.ndarray, right: np.ndarray) -> None:
        if left.shape[:2] != right.shape[:2]:
            raise InputError(f"The left view is {left.shape[1]}x{left.shape[0]} but the right view "
                             f"{right.shape[1]}x{right.shape[0]}; a stereo pair needs two views of one size.")
        self.calibration.check_frames(left.shape[1], left.shape[0])

    def compute(self, left: np.ndarray, right: np.ndarray) -> StereoDepth:
        import time

        import cv2

        s = self.settings
        self.check_pair(left, right)
        t0 = time.perf_counter()
        grey_left = _grey(left)
        lr = cv2.remap(grey_left, *self.maps[0], cv2.INTER_LINEAR)
        rr = cv2.remap(_grey(right), *self.maps[1], cv2.INTER_LINEAR)
        t1 = time.perf_counter()
        d_left, d_right = _disparities(lr, rr, s, *self.range)
        d_left[~_usable(lr, self.cover[0])] = np.nan
        d_right[~_usable(rr, self.cover[1])] = np.nan
        tol = s.lr_max_diff_px * s.scale
        diff = left_right_difference(d_left, d_right)
        d_left[~(diff <= tol)] = np.nan
        confidence = np.where(np.isfinite(d_left), np.exp(-0.5 * (np.nan_to_num(diff) / (0.6 * tol)) ** 2), 0.0)
        if s.smoothing == "guided":
            d_left = guided_smooth(d_left, lr)
        t2 = time.perf_counter()
        depth, conf = _to_original(self.rect, d_left, confidence, s.scale)
        unseen = grey_left <= _DARK   # the black outside the lens's image circle: nothing to measure there
        depth[unseen], conf[unseen] = 0, 0
        t3 = time.perf_counter()
        return StereoDepth(depth, conf, d_left, {"rectify": t1 - t0, "match": t2 - t1, "depth": t3 - t2})

    def _epipolar_share(self, left_grey: np.ndarray, right_grey: np.ndarray) -> int:
        """Feature matches of the rectified pair that obey the calibration: same row (within 1.5 px) and a
        disparity inside the expected range."""
        import cv2

        lr, rr = self.rect.rectify(left_grey, right_grey)
        orb = cv2.ORB_create(1500)
        kl, dl = orb.detectAndCompute(lr, None)
        kr, dr = orb.detectAndCompute(rr, None)
        if dl is None or dr is None:
            return 0
        matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(dl, dr)
        lo, hi = self.rect.disparity_range(self.settings.min_depth_mm, self.settings.max_depth_mm)
        good = 0
        for m in matches:
            (xl, yl), (xr, yr) = kl[m.queryIdx].pt, kr[m.trainIdx].pt
            good += abs(yl - yr) < 1.5 and lo - 2 <= xl - xr <= hi + 2
        return good

    def swapped_score(self, left: np.ndarray, right: np.ndarray) -> float:
        """Share, in [0, 1], of calibration-consistent feature matches found with the views exchanged rather
        than as given; above one half the views are swapped. A swapped pair rectified with the given maps
        shows negative disparities (identical cameras) or rows that no longer agree (cameras that differ
        in principal point, distortion or rotation)."""
        self.check_pair(left, right)
        gl, gr = _grey(left), _grey(right)
        given, swapped = self._epipolar_share(gl, gr), self._epipolar_share(gr, gl)
        return swapped / max(given + swapped, 1)

    def check_order(self, left: np.ndarray, right: np.ndarray) -> None:
        score = self.swapped_score(left, right)
        if score > 0.6:
            raise InputError(f"The views look swapped: they match far better as (right, left) (score {score:.2f}; "
                             f"negative disparities dominate as given); give the left view as left.")
