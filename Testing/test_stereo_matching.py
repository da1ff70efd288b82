"""Stereo matching: exact synthetic depth, parity with OpenCV's reprojection, holes kept, swapped views,
and the real Open-CAS / Hamlyn pairs (no dense truth: working distance, smoothness, left-right agreement)."""
from functools import lru_cache

import cv2
import numpy as np
import pytest
from conftest import shared_path

from SurgicalAICore.errors import InputError
from SurgicalDepthLib.stereo import StereoMatcher, StereoSettings, load_stereo_calibration
from SurgicalDepthLib.stereo.synthetic import cavity_pair


@lru_cache(maxsize=1)
def synthetic_pair():
    return cavity_pair(320, 256, baseline_mm=5.0, seed=0)


def test_synthetic_depth_is_metric_and_covers_the_view():
    p = synthetic_pair()
    r = StereoMatcher(p.calibration, StereoSettings(min_depth_mm=20, max_depth_mm=200)).compute(p.left, p.right)
    truth = p.depth_mm > 0
    confident = (r.confidence > 0.5) & truth
    rel = np.abs(r.depth_mm[confident] - p.depth_mm[confident]) / p.depth_mm[confident]
    assert rel.mean() <= 0.02, rel.mean()
    assert confident.sum() / truth.sum() >= 0.85
    # holes stay holes: nothing where the lens sees nothing (beyond the two-pixel rim where the renderer's
    # linear warp and blur spread colour past its nearest-resampled depth),
    # no confidence without depth
    rim = cv2.dilate(truth.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert not np.any(r.depth_mm[~rim] > 0)
    assert not np.any((r.confidence > 0) & (r.depth_mm == 0))


def test_depth_agrees_with_opencv_reprojection():
    """Our rectified-to-original depth equals cv2.reprojectImageTo3D(Q) carried back by R1 and projected with
    the left camera's distortion (nearest pixel), wherever the surface is smooth."""
    p = synthetic_pair()
    m = StereoMatcher(p.calibration)
    r = m.compute(p.left, p.right)
    xyz = cv2.reprojectImageTo3D(np.nan_to_num(r.disparity, nan=-1).astype(np.float32), m.rect.Q)
    ok = np.isfinite(r.disparity)
    pts = xyz[ok] @ m.rect.R1       # rectified -> original left camera frame (R1^T x)
    uv, _ = cv2.projectPoints(pts, np.zeros(3), np.zeros(3), p.calibration.left.K, p.calibration.left.dist_coeffs)
    u, v = np.rint(uv.reshape(-1, 2)).astype(int).T
    inside = (u >= 0) & (u < 320) & (v >= 0) & (v < 256)
    ours = r.depth_mm[v[inside], u[inside]]
    theirs = pts[inside, 2]
    both = ours > 0
    assert both.mean() > 0.9
    rel = np.abs(ours[both] - theirs[both]) / theirs[both]
    assert np.median(rel) < 0.003 and np.mean(rel < 0.01) > 0.95


def test_guided_filtering_keeps_holes_and_accuracy():
    p = synthetic_pair()
    plain = StereoMatcher(p.calibration).compute(p.left, p.right)
    guided = StereoMatcher(p.calibration, StereoSettings(smoothing="guided")).compute(p.left, p.right)
    assert np.array_equal(plain.depth_mm > 0, guided.depth_mm > 0)
    c = (guided.confidence > 0.5) & (p.depth_mm > 0)
    assert np.mean(np.abs(guided.depth_mm[c] - p.depth_mm[c]) / p.depth_mm[c]) <= 0.02


def test_swapped_views_are_detected():
    p = synthetic_pair()
    m = StereoMatcher(p.calibration)
    m.check_order(p.left, p.right)
    with pytest.raises(InputError, match="swapped"):
        m.check_order(p.right, p.left)


def test_pairs_of_other_sizes_are_refused():
    p = synthetic_pair()
    m = StereoMatcher(p.calibration)
    with pytest.raises(InputError, match="one size"):
        m.compute(p.left, p.right[:-2])
    with pytest.raises(InputError, match="320x256 views but the frames are 160x128"):
        m.compute(p.left[::2, ::2], p.right[::2, ::2])
    with pytest.raises(InputError, match="depth range"):
        StereoMatcher(p.calibration, StereoSettings(min_depth_mm=50, max_depth_mm=40))


def _read(path):
    return cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1]


def test_open_cas_pair_is_metric_smooth_and_consistent():
    folder = shared_path("endoscopy/stereo/opencas_porcine")
    left, right = (_read(folder / f"Stereo_SD_d_complete_22_IMG_{s}.bmp") for s in ("left", "right"))
    mask = cv2.imread(str(folder / "Stereo_SD_d_complete_22_MASK_left.png"), 0) > 0
    m = StereoMatcher(load_stereo_calibration(folder), StereoSettings(min_depth_mm=30, max_depth_mm=120))
    r = m.compute(left, right)
    ok = (r.depth_mm > 0) & mask
    assert ok.sum() / mask.sum() > 0.6
    d = r.depth_mm[ok]
    assert 40 <= np.median(d) <= 65 and np.mean((d > 35) & (d < 70)) > 0.95
    # smooth organ surface: a pixel rarely departs from its neighbourhood's median by more than 1 mm
    med = cv2.medianBlur(r.depth_mm.astype(np.float32), 5)
    inner = ok & (cv2.erode(ok.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0)
    assert np.median(np.abs(r.depth_mm - med)[inner]) < 0.15 and np.mean(np.abs(r.depth_mm - med)[inner] > 1) < 0.05


def test_hamlyn_pair_and_its_swap():
    folder = shared_path("endoscopy/stereo/hamlyn_heart")
    left, right = _read(folder / "f7_dynamic_deint_L_0100.png"), _read(folder / "f7_dynamic_deint_R_0100.png")
    m = StereoMatcher(load_stereo_calibration(folder, (360, 288)))
    m.check_order(left, right)
    with pytest.raises(InputError, match="swapped"):
        m.check_order(right, left)
    r = m.compute(left, right)
    assert (r.depth_mm > 0).mean() > 0.2 and 40 < np.median(r.depth_mm[r.depth_mm > 0]) < 120
