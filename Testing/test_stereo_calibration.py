"""Stereo calibration files, checkerboard stereo calibration, and the camera-pair node in the scene."""
import json

import cv2
import numpy as np
import pytest
from conftest import shared_path

from SurgicalAICore.errors import InputError
from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics
from SurgicalDepthLib.stereo import (StereoCalibration, calibrate_stereo, load_stereo_calibration,
                                     save_stereo_calibration)

LEFT = CameraIntrinsics(300.0, 302.0, 161.0, 118.0, 320, 240, (-0.1, 0.02, 0.0, 0.0, 0.0))
RIGHT = CameraIntrinsics(298.0, 300.0, 158.0, 121.0, 320, 240, (-0.08, 0.01, 0.0, 0.0, 0.0))
R_TRUE, _ = cv2.Rodrigues(np.array([0.01, -0.02, 0.005]))
T_TRUE = np.array([-5.0, 0.1, 0.2])


def pair() -> StereoCalibration:
    return StereoCalibration(LEFT, RIGHT, R_TRUE, T_TRUE)


@pytest.mark.parametrize("suffix", [".json", ".yml", ".xml"])
def test_files_round_trip(tmp_path, suffix):
    calib = pair()
    rect = dict(zip(("R1", "R2", "P1", "P2", "Q"), cv2.stereoRectify(LEFT.K, LEFT.dist_coeffs, RIGHT.K,
                    RIGHT.dist_coeffs, (320, 240), R_TRUE, T_TRUE.reshape(3, 1))[:5], strict=True))
    calib = StereoCalibration(LEFT, RIGHT, R_TRUE, T_TRUE, rect)
    path = save_stereo_calibration(calib, tmp_path / f"pair{suffix}")
    back = load_stereo_calibration(path)
    assert back.left == LEFT and back.right == RIGHT
    np.testing.assert_allclose(back.R, R_TRUE, atol=1e-12)
    np.testing.assert_allclose(back.T, T_TRUE, atol=1e-12)
    np.testing.assert_allclose(back.rectification["P2"], rect["P2"], atol=1e-9)
    assert [p.name for p in tmp_path.iterdir()] == [f"pair{suffix}"]


def test_opencv_sample_keys_are_read(tmp_path):
    """A file as OpenCV's stereo_calib sample writes it (M1/D1/M2/D2 in one file, R/T in another) merged."""
    path = tmp_path / "stereo.yml"
    fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_WRITE)
    for key, value in (("M1", LEFT.K), ("D1", LEFT.dist_coeffs[None]), ("M2", RIGHT.K), ("D2", RIGHT.dist_coeffs[None]),
                       ("R", R_TRUE), ("T", T_TRUE[:, None])):
        fs.write(key, value)
    fs.write("image_width", 320)
    fs.write("image_height", 240)
    fs.release()
    calib = load_stereo_calibration(path)
    assert abs(calib.baseline_mm - np.linalg.norm(T_TRUE)) < 1e-9 and calib.size == (320, 240)


def test_open_cas_and_hamlyn_folders():
    cas = load_stereo_calibration(shared_path("endoscopy/stereo/opencas_porcine"))
    assert cas.size == (720, 576) and 4.3 < cas.baseline_mm < 4.5 and cas.left.fx == pytest.approx(439.1244812012)
    ham = load_stereo_calibration(shared_path("endoscopy/stereo/hamlyn_heart"), (360, 288))
    assert 5.4 < ham.baseline_mm < 5.6 and not ham.left.has_distortion
    with pytest.raises(InputError, match="image size"):
        load_stereo_calibration(shared_path("endoscopy/stereo/hamlyn_heart"))


@pytest.mark.parametrize("change, message", [
    (lambda d: d["R"][0].__setitem__(0, float("nan")), "NaN"),
    (lambda d: d["R"][0].__setitem__(0, 2.0), "not a rotation"),
    (lambda d: d.__setitem__("R", (-np.eye(3)).tolist()), "not a rotation"),
    (lambda d: d.__setitem__("T", [0.0, 0.0, 0.0]), "baseline"),
    (lambda d: d["right"].__setitem__("width", 640), "one size"),
    (lambda d: d.pop("T"), "incomplete"),
])
def test_bad_calibrations_are_refused_and_nothing_loaded(tmp_path, change, message):
    d = json.loads(json.dumps(pair().to_dict()))
    change(d)
    (tmp_path / "bad.json").write_text(json.dumps(d))
    with pytest.raises(InputError, match=message):
        load_stereo_calibration(tmp_path / "bad.json")


def test_frame_size_must_match():
    with pytest.raises(InputError, match="320x240 views but the frames are 640x480"):
        pair().check_frames(640, 480)


def board_pairs(n=8, seed=1, pattern=(8, 5), square=6.0):
    """Images of a checkerboard seen by both cameras (pinhole part by homography, then each lens distortion)."""
    cols, rows = pattern[0] + 1, pattern[1] + 1
    px = 10
    s = int(square * px)
    texture = np.full(((rows + 2) * s, (cols + 2) * s), 255, np.uint8)
    for r in range(rows):
        for c in range(cols):
            if (r + c) % 2 == 0:
                texture[(r + 1) * s:(r + 2) * s, (c + 1) * s:(c + 2) * s] = 0
    rng = np.random.default_rng(seed)
    centre = np.array([(cols + 2) * square / 2, (rows + 2) * square / 2, 0])
    pairs = []
    for _ in range(n):
        Rb, _ = cv2.Rodrigues(rng.uniform(-0.5, 0.5, 3))
        t = np.array([rng.uniform(-6, 6), rng.uniform(-4, 4), rng.uniform(75, 95)]) - Rb @ centre
        views = []
        for cam, R, T in ((LEFT, np.eye(3), np.zeros(3)), (RIGHT, R_TRUE, T_TRUE)):
            Rc, tc = R @ Rb, R @ t + T
            H = cam.K @ np.column_stack([Rc[:, 0], Rc[:, 1], tc]) @ np.diag([1 / px, 1 / px, 1.0])
            img = cv2.warpPerspective(texture, H, (cam.width, cam.height), flags=cv2.INTER_AREA, borderValue=128)
            img = _distort(cam, img)
            views.append(np.repeat(img[:, :, None], 3, axis=2))
        pairs.append(tuple(views))
    return pairs


def _distort(cam, img):
    from SurgicalDepthLib.camera.intrinsics import pixel_grid

    u, v = pixel_grid(cam.width, cam.height)
    pts = np.stack([u.ravel(), v.ravel()], 1).reshape(-1, 1, 2)
    und = cv2.undistortPoints(pts, cam.K, cam.dist_coeffs, P=cam.K).reshape(cam.height, cam.width, 2)
    return cv2.remap(img, und[..., 0].astype(np.float32), und[..., 1].astype(np.float32), cv2.INTER_LINEAR,
                     borderValue=128)


def test_checkerboard_stereo_calibration_recovers_the_pair():
    pairs = board_pairs()
    # a pair whose right view shows another board pose: found in both views, but it cannot fit the rig
    bad = (pairs[0][0], pairs[1][1])
    result = calibrate_stereo([*pairs[1:], bad, (pairs[2][0], np.full_like(pairs[2][1], 90))], (8, 5), 6.0)
    c = result.calibration
    assert result.pairs_total == 9 and len(result.pairs_used) == 7 and 8 not in result.pairs_used
    assert result.bad_pairs == [7], result.per_pair_px
    assert abs(c.baseline_mm / np.linalg.norm(T_TRUE) - 1) < 0.05
    assert abs(c.left.fx / LEFT.fx - 1) < 0.03 and abs(c.right.fy / RIGHT.fy - 1) < 0.03
    clean = calibrate_stereo(pairs, (8, 5), 6.0)
    assert clean.rms_px < 0.3 and not clean.bad_pairs
    assert abs(clean.calibration.baseline_mm / np.linalg.norm(T_TRUE) - 1) < 0.02
    angle = np.degrees(np.linalg.norm(cv2.Rodrigues(clean.calibration.R @ R_TRUE.T)[0]))
    assert angle < 0.3 and "reprojection error" in clean.summary()


def test_too_few_pairs_is_a_clear_error():
    pairs = board_pairs(n=2)
    with pytest.raises(InputError, match="at least 4"):
        calibrate_stereo(pairs, (8, 5), 6.0)
    with pytest.raises(InputError, match="one size"):
        calibrate_stereo([(pairs[0][0], pairs[0][1][:100])], (8, 5), 6.0)


def test_camera_pair_node_survives_mrb(scene, tmp_path):
    from test_pointcloud_scene import save_and_reload

    from SurgicalDepthLib.stereo.scene import left_to_right_of, stereo_from_scene, stereo_nodes, store_stereo_in_scene

    node = store_stereo_in_scene(scene, pair(), "Scope pair")
    np.testing.assert_allclose(left_to_right_of(node), pair().left_to_right, atol=1e-12)
    reloaded = save_and_reload(scene, tmp_path / "pair.mrb")
    back = stereo_from_scene(reloaded, "Scope pair")
    assert back.left == LEFT and back.right == RIGHT
    np.testing.assert_allclose(back.T, T_TRUE, atol=1e-12)
    np.testing.assert_allclose(left_to_right_of(stereo_nodes(reloaded)[0]), pair().left_to_right, atol=1e-9)
