"""Camera files (OpenCV YAML/XML, JSON), intrinsics in the scene, checkerboard calibration, fitting to frames."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from SurgicalAICore.errors import InputError
from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics
from SurgicalDepthLib.camera.calibration import calibrate_checkerboard
from SurgicalDepthLib.camera.scene import camera_from_scene, store_camera_in_scene
from SurgicalDepthLib.camera.files import load_camera, save_camera
from SurgicalDepthLib.video.prep import crop_resize, fit_camera

CAMERA = CameraIntrinsics(612.5, 610.25, 331.0, 243.5, 640, 480, (-0.21, 0.05, 0.001, -0.002, 0.01))


@pytest.mark.parametrize("suffix", [".json", ".yml", ".yaml", ".xml"])
def test_camera_file_round_trip(tmp_path, suffix):
    path = save_camera(CAMERA, tmp_path / f"scope{suffix}")
    back = load_camera(path)
    assert back.width == 640 and back.height == 480
    assert np.allclose(back.K, CAMERA.K) and np.allclose(back.dist_coeffs, CAMERA.dist_coeffs)


def test_reads_opencv_calibration_sample_layout(tmp_path):
    path = tmp_path / "out_camera_data.yml"
    path.write_text("%YAML:1.0\n---\nimage_width: 320\nimage_height: 240\ncamera_matrix: !!opencv-matrix\n"
                    "   rows: 3\n   cols: 3\n   dt: d\n   data: [ 300., 0., 160., 0., 301., 120., 0., 0., 1. ]\n"
                    "distortion_coefficients: !!opencv-matrix\n   rows: 5\n   cols: 1\n   dt: d\n"
                    "   data: [ -0.1, 0.02, 0., 0., 0. ]\n")
    cam = load_camera(path)
    assert (cam.fx, cam.fy, cam.cx, cam.cy, cam.width) == (300.0, 301.0, 160.0, 120.0, 320)
    assert cam.distortion[:2] == (-0.1, 0.02)


def test_bad_camera_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_camera(tmp_path / "none.yml")
    (tmp_path / "c.txt").write_text("x")
    with pytest.raises(InputError, match=r".json, .yml"):
        load_camera(tmp_path / "c.txt")
    (tmp_path / "broken.yml").write_text("%YAML:1.0\n---\nimage_width: 320\n")
    with pytest.raises(InputError, match="camera_matrix"):
        load_camera(tmp_path / "broken.yml")
    (tmp_path / "garbage.xml").write_text("<<<not xml")
    with pytest.raises(InputError, match=r"garbage.xml"):
        load_camera(tmp_path / "garbage.xml")
    (tmp_path / "c.json").write_text('{"fx": 1}')
    with pytest.raises(InputError, match="incomplete"):
        load_camera(tmp_path / "c.json")
    with pytest.raises(InputError, match="does not exist"):
        save_camera(CAMERA, tmp_path / "no" / "c.json")


def test_camera_stored_in_scene_survives_mrb(scene, tmp_path):
    from test_pointcloud_scene import save_and_reload

    node = store_camera_in_scene(scene, CAMERA, "Scope A")
    store_camera_in_scene(scene, CAMERA.scaled(320, 240), "Scope B")
    assert camera_from_scene(scene, "Scope A") == CAMERA
    assert camera_from_scene(scene).width == 320
    store_camera_in_scene(scene, CAMERA.scaled(160, 120), node=node)
    assert camera_from_scene(scene, "Scope A").width == 160
    reloaded = save_and_reload(scene, tmp_path / "cam.mrb")
    assert camera_from_scene(reloaded, "Scope A") == CAMERA.scaled(160, 120)
    assert camera_from_scene(reloaded, "Scope B") == CAMERA.scaled(320, 240)


def board_views(camera: CameraIntrinsics, pattern=(7, 5), square=10.0, n=6, seed=0):
    """Images of a checkerboard seen by ``camera`` (pinhole) from ``n`` poses, by homography."""
    cols, rows = pattern[0] + 1, pattern[1] + 1
    px = 8  # texture pixels per mm
    texture = np.full(((rows + 2) * int(square * px), (cols + 2) * int(square * px)), 255, np.uint8)
    s = int(square * px)
    for r in range(rows):
        for c in range(cols):
            if (r + c) % 2 == 0:
                texture[(r + 1) * s:(r + 2) * s, (c + 1) * s:(c + 2) * s] = 0
    rng = np.random.default_rng(seed)
    views = []
    for _ in range(n):
        rvec = rng.uniform(-0.35, 0.35, 3)
        R, _ = cv2.Rodrigues(rvec)
        board_centre = np.array([(cols + 2) * square / 2, (rows + 2) * square / 2, 0])
        t = np.array([rng.uniform(-8, 8), rng.uniform(-6, 6), rng.uniform(150, 190)]) - R @ board_centre
        # texture pixel -> board mm -> image
        to_mm = np.diag([1 / px, 1 / px, 1.0])
        H = camera.K @ np.column_stack([R[:, 0], R[:, 1], t]) @ to_mm
        img = cv2.warpPerspective(texture, H, (camera.width, camera.height), flags=cv2.INTER_AREA,
                                  borderValue=128)
        views.append(np.repeat(img[:, :, None], 3, axis=2))
    return views


def test_checkerboard_calibration_recovers_intrinsics():
    truth = CameraIntrinsics(300.0, 300.0, 161.0, 118.0, 320, 240)
    views = board_views(truth)
    seen = []
    result = calibrate_checkerboard([*views, np.full_like(views[0], 90)], (7, 5), 10.0,
                                    progress=lambda f, m: seen.append(f))
    assert result.boards_found == 6 and result.frames_total == 7 and 6 not in result.frames_used
    assert result.rms_px < 0.5
    assert abs(result.camera.fx / truth.fx - 1) < 0.02 and abs(result.camera.fy / truth.fy - 1) < 0.02
    assert abs(result.camera.cx - truth.cx) < 4 and abs(result.camera.cy - truth.cy) < 4
    assert seen[-1] == 1.0 and "reprojection error" in result.summary()


def test_too_few_boards_is_a_clear_error():
    truth = CameraIntrinsics(300.0, 300.0, 160.0, 120.0, 320, 240)
    views = board_views(truth, n=2)
    with pytest.raises(InputError, match="Found a 7x5 checkerboard in 2 of 3 frames; at least 4"):
        calibrate_checkerboard([*views, np.zeros_like(views[0])], (7, 5), 10.0)
    with pytest.raises(InputError, match="square size"):
        calibrate_checkerboard(views, (7, 5), 0)


def test_intrinsics_fit_frames_scale_and_crop():
    cam = CameraIntrinsics(1000.0, 1000.0, 959.5, 539.5, 1920, 1080)
    assert fit_camera(cam, 1920, 1080) is cam
    half = fit_camera(cam, 960, 540)
    assert half.fx == pytest.approx(500.0) and half.cx == pytest.approx(479.5)
    with pytest.raises(InputError, match="another aspect ratio"):
        fit_camera(cam, 640, 480)
    default = fit_camera(None, 320, 256)
    assert default.width == 320 and default.vertical_fov_deg == pytest.approx(70.0)
    # crop then resize: a world point projects to the same place in the transformed image
    rgb = np.zeros((1080, 1920, 3), np.uint8)
    out, c2 = crop_resize(rgb, cam, box=(400, 100, 1200, 900), size=(400, 300))
    assert out.shape == (300, 400, 3)
    point = np.array([30.0, -12.0, 200.0])
    u_full = cam.fx * point[0] / point[2] + cam.cx
    u_new = c2.fx * point[0] / point[2] + c2.cx
    assert u_new == pytest.approx((u_full - 400 + 0.5) * 400 / 1200 - 0.5)
    with pytest.raises(InputError, match="does not fit"):
        crop_resize(rgb, cam, box=(1800, 0, 400, 100))
