"""Three-state trust, the motion model, the tracker that holds the last good pose, and the trust-aware overlay."""
import numpy as np
import pytest

from SurgicalAICore.errors import InputError
from SurgicalDepthLib.registration import shapes
from SurgicalDepthLib.registration.icp import pose_error
from SurgicalDepthLib.registration.motion import MotionModel, check_rigid
from SurgicalDepthLib.registration.tracking import FrameTracker
from SurgicalDepthLib.registration.trust import LOST, TRUSTED, calibrate, classify, evaluate, TrustFeatures
from organ_view import camera_cloud as _camera_cloud, organ_and_view


@pytest.fixture(scope="module")
def organ():
    return organ_and_view()


def test_check_rigid_refuses_scaled_sheared_and_mirrored_poses():
    good = shapes.perturbation(20, 10, [1, 2, 3], np.random.default_rng(0))
    assert np.allclose(check_rigid(good), good)
    for bad, why in ((np.diag([1.1, 1.1, 1.1, 1.0]), "rotation"), (np.diag([1, 1, -1, 1.0]), "rotation"),
                     (np.eye(4) + np.eye(4, k=1) * 0.2, "rotation"), (np.full((4, 4), np.nan), "finite"),
                     (np.eye(3), "4x4")):
        with pytest.raises(InputError, match=why):
            check_rigid(bad)


def test_motion_model_predicts_constant_velocity_within_its_bound():
    rng = np.random.default_rng(1)
    step = shapes.perturbation(2, 3, [0, 0, 50], rng)
    poses = [np.eye(4)]
    for _ in range(3):
        poses.append(step @ poses[-1])
    model = MotionModel(poses[0])
    for p in poses[1:]:
        model.update(p)
    assert max(pose_error(model.predict(), step @ poses[-1])[:2]) < 1e-4
    # a jump beyond the bound moves the prediction by at most the bound
    fast = MotionModel(np.eye(4), max_mm=5.0, max_deg=5.0)
    fast.update(shapes.perturbation(0, 50, [0, 0, 0], rng))
    assert np.linalg.norm(fast.shift) == pytest.approx(5.0)
    fast.miss()  # a missed frame: the last good pose stays and the velocity fades
    assert np.linalg.norm(fast.shift) < 5.0


def test_calibration_keeps_bad_fits_out_of_trusted():
    """Rows where a wrong pose fits as tightly as a right one (same residual) but moved further: the calibrated
    limits must use the motion feature to keep every bad row out, and still trust most good ones."""
    rng = np.random.default_rng(2)
    rows = []
    for _ in range(400):
        bad = rng.random() < 0.3
        tre = rng.uniform(6, 60) if bad else rng.uniform(0, 3)
        rows.append(dict(rms_mm=rng.uniform(0.2, 1.5), inlier_fraction=rng.uniform(0.7, 1.0),
                         conditioning=rng.uniform(1e-3, 1e-1), log_scale=rng.uniform(0, 0.05),
                         moved_mm=tre * rng.uniform(0.6, 1.0) + rng.uniform(0, 1), turned_deg=rng.uniform(0, 3),
                         tre_mm=tre))
    cal = calibrate(rows[:300])
    for part in (rows[:300], rows[300:]):
        result = evaluate(part, cal)
        assert result["trusted"]["max_tre_mm"] <= 5.0
        assert result["trusted"]["share"] > 0.5
    f = TrustFeatures(0.5, 0.9, 1e-2, 0.0, moved_mm=40.0, turned_deg=1.0)
    state, reason = classify(f, cal)
    assert state != TRUSTED and "moved" in reason


def test_tracker_holds_the_last_good_pose_when_a_frame_cannot_be_explained(organ, scene):
    target, view = organ
    node = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    from SurgicalAICore.mrml.transforms import get_matrix

    rng = np.random.default_rng(9)
    truth = np.eye(4)
    tracker = FrameTracker(target, truth, max_points=3000, transform_node=node, global_budget_s=0.3)
    for _ in range(2):
        truth = shapes.perturbation(2, 1.5, view.mean(0), rng) @ truth
        r = tracker.update(_camera_cloud(view, truth))
        assert r.state == TRUSTED and max(pose_error(r.matrix, truth)[:2]) < 0.2
    good = get_matrix(node).copy()
    # a frame of something else (a blob the CT does not have): lost, the last good pose held, node unchanged
    blob = shapes.apply(shapes.perturbation(0, 0, [0, 0, 0], rng), shapes.surface_samples(
        shapes.organ_polydata(radius_mm=15, axes=(1, 1, 1)), 1.5)) + view.mean(0) + [0, 0, 200]
    r = tracker.update(_camera_cloud(blob, truth))
    assert r.state == LOST and r.lost and r.relocalised
    assert np.allclose(r.matrix, good) and np.allclose(get_matrix(node), good)
    # the view comes back: trusted again at the right pose
    r = tracker.update(_camera_cloud(view, truth))
    assert r.state == TRUSTED and max(pose_error(r.matrix, truth)[:2]) < 0.3


def test_tracker_refuses_a_non_rigid_tracker_prior(organ):
    target, view = organ
    tracker = FrameTracker(target, np.eye(4), max_points=2000)
    with pytest.raises(InputError, match="rigid"):
        tracker.update(view, prior=np.diag([2.0, 2.0, 2.0, 1.0]))
    assert tracker.frames == 1 and np.allclose(tracker.pose, np.eye(4))


def test_overlay_for_state_draws_nothing_confident_unless_trusted():
    from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics
    from SurgicalDepthLib.overlay.composite import structures_from_surfaces
    from SurgicalDepthLib.overlay.trust_overlay import overlay_for_state

    camera = CameraIntrinsics.from_fov(160, 120, 60.0)
    blob = shapes.organ_polydata(radius_mm=20, resolution=30, centre=(0, 0, 120))
    structures = structures_from_surfaces({"blob": blob}, colors={"blob": (0, 255, 0)})
    rgb = np.full((120, 160, 3), 100, np.uint8)
    trusted = overlay_for_state(rgb, structures, np.eye(4), camera, "trusted")
    uncertain = overlay_for_state(rgb, structures, np.eye(4), camera, "uncertain")
    lost = overlay_for_state(rgb, structures, np.eye(4), camera, "lost")
    below = slice(20, None)  # under the banner
    green = (trusted[below, :, 1] > 150) & (trusted[below, :, 0] < 100)
    assert green.sum() > 500                                     # filled structure
    assert ((uncertain[below, :, 1] > 150) & (uncertain[below, :, 0] < 100)).sum() == 0  # no confident colour
    assert (uncertain[below] != 100).any(axis=2).sum() < green.sum() / 3               # outlines only
    assert np.array_equal(lost[below], rgb[below])               # nothing drawn on the anatomy
    assert (lost[:8] != 100).any()                               # the banner says so
    with pytest.raises(InputError, match="state"):
        overlay_for_state(rgb, structures, np.eye(4), camera, "maybe")


def test_depth_aware_registration_removes_a_depth_offset(organ):
    """A cloud whose depth is off by a constant (z + 8 mm, the kind of error a scale cannot absorb): the joint
    depth shift brings it back, and the pose is closer than a similarity fit alone gets it."""
    from SurgicalDepthLib.registration.depth_correction import register_depth_aware
    from SurgicalDepthLib.registration.register import register_cloud
    from SurgicalDepthLib.synthetic.camera_paths import look_at

    target, view = organ
    direction = np.array([1, 0.3, 0.2]) / np.linalg.norm([1, 0.3, 0.2])
    truth = look_at(view.mean(0) + 80 * direction, view.mean(0))
    cam = _camera_cloud(view, truth)
    cam = cam[cam[:, 2] > 1]
    shifted = cam * ((cam[:, 2] + 8.0) / cam[:, 2])[:, None]
    start = shapes.perturbation(2, 2, view.mean(0), np.random.default_rng(4)) @ truth
    plain = register_cloud(shifted, target, current=start, scale=True)
    aware = register_depth_aware(shifted, target, start)
    assert aware.shift_mm == pytest.approx(-8.0, abs=2.5)
    err_plain = pose_error(plain.matrix, truth)[1]
    err_aware = pose_error(aware.registration.matrix, truth)[1]
    assert err_aware < err_plain and err_aware < 2.0, (err_plain, err_aware)


def test_the_residual_is_judged_against_the_viewing_distance():
    """Depth noise grows with distance: the same 0.5 mm residual is a right fit at 60 mm (0.8 %) and a mismatch
    at 12 mm (4 %). ``features`` measures the ratio, and calibration on rows where only the ratio tells good
    from bad uses it."""
    from SurgicalDepthLib.registration.icp import ICPResult
    from SurgicalDepthLib.registration.trust import features

    rng = np.random.default_rng(4)
    for distance, scale in ((60.0, 1.0), (12.0, 1.25)):
        cloud = rng.normal(size=(500, 3)) * [5, 5, 1] + [0, 0, distance]
        fit = ICPResult(np.diag([scale, scale, scale, 1.0]), scale, 0.5, 1.0, 10, True, True, len(cloud), 0.2)
        f = features(fit, np.eye(4), cloud)
        expected = 0.5 / (np.median(np.linalg.norm(cloud, axis=1)) * scale)
        assert f.residual_ratio == pytest.approx(expected) and "residual_ratio" in f.as_dict()
    rows = []
    for _ in range(300):
        bad = rng.random() < 0.3
        distance = rng.uniform(10, 80)
        ratio = rng.uniform(0.02, 0.05) if bad else rng.uniform(0.0005, 0.012)
        rows.append(dict(rms_mm=ratio * distance, inlier_fraction=1.0, conditioning=0.2, log_scale=0.0,
                         moved_mm=rng.uniform(0, 3), turned_deg=rng.uniform(0, 3), residual_ratio=ratio,
                         tre_mm=rng.uniform(6, 30) if bad else rng.uniform(0, 2)))
    cal = calibrate(rows[:200])
    assert 0.012 <= cal.trusted.max_residual_ratio < 0.02
    result = evaluate(rows[200:], cal)
    assert result["trusted"]["max_tre_mm"] <= 5.0 and result["trusted"]["share"] > 0.5
    near = TrustFeatures(0.5, 1.0, 0.2, 0.0, 1.0, 1.0, residual_ratio=0.04)
    state, reason = classify(near, cal)
    assert state != TRUSTED and "of the viewing distance" in reason
