"""Robust point-to-plane ICP, landmark and global initialisation, frame-to-frame tracking."""
import numpy as np
import pytest

from SurgicalAICore.errors import InputError
from SurgicalDepthLib.registration import shapes
from SurgicalDepthLib.registration.icp import check_cloud, icp, pose_error
from SurgicalDepthLib.registration.initial_pose import global_init, init_from_tracking, landmark_transform
from SurgicalDepthLib.registration.tracking import FrameTracker
from organ_view import camera_cloud as _camera_cloud, organ_and_view


@pytest.fixture(scope="module")
def organ():
    return organ_and_view()


@pytest.mark.parametrize("scale", [1.0, 1.15])
def test_icp_recovers_rigid_and_similarity_transform_noise_free(organ, scale):
    target, view = organ
    rng = np.random.default_rng(3)
    truth = shapes.perturbation(20, 10, view.mean(0), rng, scale=scale)
    result = icp(_camera_cloud(view, truth), target, np.eye(4), scale=scale != 1.0)
    rot, trans, ratio = pose_error(result.matrix, truth)
    assert rot < 0.1 and trans < 0.1, (rot, trans)
    assert abs(ratio - 1) < 1e-3
    assert result.rms_mm < 0.05 and result.inlier_fraction > 0.9 and result.well_constrained


@pytest.mark.parametrize("seed", [0, 1])
def test_icp_robust_to_outliers_and_partial_overlap(organ, seed):
    target, view = organ
    rng = np.random.default_rng(seed)
    # half the cloud is tissue the CT surface does not contain (a wavy sheet beside the organ) ...
    g = rng.uniform(-40, 40, size=(len(view), 2))
    foreign = np.c_[np.full(len(view), view[:, 0].max() + 15) + 3 * np.sin(g[:, 0] / 7), g[:, 0], g[:, 1]]
    cloud = np.vstack([view, foreign])
    # ... and 30 % of all points are outliers, plus 0.2 mm noise
    cloud = np.vstack([cloud, shapes.outliers(cloud, 0.3, rng)])
    cloud += rng.normal(scale=0.2, size=cloud.shape)
    truth = shapes.perturbation(8, 5, view.mean(0), rng)
    result = icp(_camera_cloud(cloud, truth), target, np.eye(4))
    # TRE over the visible organ points is what matters to the surgeon
    tre = np.linalg.norm(shapes.apply(result.matrix, _camera_cloud(view, truth)) - view, axis=1)
    assert tre.max() < 1.0, tre.max()
    assert 0.25 < result.inlier_fraction < 0.5  # the foreign sheet and outliers were recognised


def test_degenerate_clouds_are_clear_errors(organ):
    target, _ = organ
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="empty"):
        icp(np.zeros((0, 3)), target)
    with pytest.raises(InputError, match="empty"):
        icp(np.full((50, 3), np.nan), target)
    plane = np.c_[rng.uniform(-20, 20, (500, 2)), np.zeros(500)]
    with pytest.raises(InputError, match="planar"):
        icp(plane, target)
    line = np.outer(np.linspace(0, 10, 100), [1, 2, 3])
    with pytest.raises(InputError, match="collinear"):
        check_cloud(line)
    with pytest.raises(InputError, match=r"\(N, 3\)"):
        check_cloud(np.zeros((10, 2)))
    with pytest.raises(InputError, match="4x4"):
        icp(rng.normal(size=(100, 3)), target, np.eye(3))


def test_landmark_transform_recovers_pose_and_rejects_bad_landmarks():
    rng = np.random.default_rng(5)
    src = rng.normal(scale=30, size=(5, 3))
    truth = shapes.perturbation(40, 25, [0, 0, 0], rng, scale=1.3)
    dst = shapes.apply(truth, src)
    rigid_truth = shapes.perturbation(40, 25, [0, 0, 0], rng)
    assert np.allclose(landmark_transform(src, shapes.apply(rigid_truth, src)), rigid_truth, atol=1e-9)
    assert np.allclose(landmark_transform(src, dst, scale=True), truth, atol=1e-9)
    assert not np.allclose(landmark_transform(src, dst, scale=False), truth, atol=1e-3)
    with pytest.raises(InputError, match="At least 3"):
        landmark_transform(src[:2], dst[:2])
    with pytest.raises(InputError, match="paired"):
        landmark_transform(src, dst[:4])
    line = np.outer([0, 1, 2, 3], [1, 1, 0])
    with pytest.raises(InputError, match="collinear"):
        landmark_transform(line, dst[:4])
    with pytest.raises(InputError, match="collinear"):
        landmark_transform(src[:4], line)


def test_init_from_tracking_composes_hand_eye():
    rng = np.random.default_rng(2)
    tracker = shapes.perturbation(30, 50, [0, 0, 0], rng)
    hand_eye = shapes.perturbation(10, 20, [0, 0, 0], rng)
    assert np.allclose(init_from_tracking(tracker, hand_eye), tracker @ hand_eye)
    assert np.allclose(init_from_tracking(tracker), tracker)
    with pytest.raises(InputError):
        init_from_tracking(np.zeros((4, 4)))


@pytest.mark.slow
def test_global_init_from_30_degrees_and_20_mm(organ):
    target, view = organ
    successes = 0
    for seed in range(2):
        rng = np.random.default_rng(100 + seed)
        start = shapes.perturbation(30, 20, view.mean(0), rng)  # a bad prior; the truth is identity
        g = global_init(view, target, prior=start, budget_s=1.0, seed=seed)
        refined = icp(view, target, g.matrix, max_points=3000)
        rot, trans, _ = pose_error(refined.matrix, np.eye(4))
        successes += rot < 0.5 and trans < 0.5
    assert successes == 2


def test_tracker_follows_motion_and_relocalises_when_lost(organ):
    target, view = organ
    rng = np.random.default_rng(9)
    truth = np.eye(4)
    tracker = FrameTracker(target, truth, max_points=3000)
    for _ in range(3):
        truth = shapes.perturbation(2, 1.5, view.mean(0), rng) @ truth
        r = tracker.update(_camera_cloud(view, truth))
        assert not r.relocalised and r.quality.trusted
        assert max(pose_error(r.matrix, truth)[:2]) < 0.2
    # a jump the local update cannot follow and the bounded motion model does not expect: the tracker must
    # search globally and never publish a wrong pose as trusted; once the search has found the view again
    # and the jump is within the motion the model allows since the last good pose, it is trusted again
    truth = shapes.perturbation(40, 25, view.mean(0), rng) @ truth
    cloud = _camera_cloud(view, truth)
    for attempt in range(4):
        r = tracker.update(cloud)
        assert r.relocalised or attempt > 0
        assert r.state != "trusted" or max(pose_error(r.matrix, truth)[:2]) < 0.5
        if r.state == "trusted":
            break
    assert r.state == "trusted" and max(pose_error(r.matrix, truth)[:2]) < 0.5


def test_global_init_budget_is_counted_in_candidates_not_seconds(organ):
    """The same search on an idle or a loaded machine: same candidates, same answer."""
    from SurgicalDepthLib.registration.initial_pose import CANDIDATES_PER_SECOND

    target, view = organ
    start = shapes.perturbation(20, 10, view.mean(0), np.random.default_rng(5))
    a = global_init(view, target, prior=start, budget_s=0.25, seed=3)
    b = global_init(view, target, prior=start, budget_s=0.25, seed=3)
    batches = -(-round(CANDIDATES_PER_SECOND * 0.25) // 64)  # whole batches of 64
    assert a.candidates == b.candidates == 64 * batches
    assert np.allclose(a.matrix, b.matrix)
    assert global_init(view, target, prior=start, candidates=64, seed=3).candidates == 64


def test_scale_cannot_collapse_the_cloud(organ):
    """A free scale with bad correspondences would shrink the cloud onto a point (zero residual)."""
    target, view = organ
    far = shapes.apply(shapes.perturbation(90, 60, view.mean(0), np.random.default_rng(8)), view)
    result = icp(far, target, np.eye(4), scale=True, max_iterations=60)
    assert 1 / 1.5 - 1e-9 <= result.scale <= 1.5 + 1e-9


def test_landmarks_picked_on_the_depth_map():
    from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics
    from SurgicalDepthLib.registration.initial_pose import points_from_pixels

    cam = CameraIntrinsics.from_fov(64, 48, 60.0)
    depth = np.full((48, 64), 50.0)
    depth[:, :10] = 0.0
    pts = points_from_pixels([[cam.cx, cam.cy], [40, 10]], depth, cam)
    assert np.allclose(pts[0], [0, 0, 50.0])
    assert np.allclose(pts[1], [(40 - cam.cx) / cam.fx * 50, (10 - cam.cy) / cam.fy * 50, 50.0])
    with pytest.raises(InputError, match="no depth"):
        points_from_pixels([[3, 3]], depth, cam)
    with pytest.raises(InputError, match="outside"):
        points_from_pixels([[70, 3]], depth, cam)


@pytest.mark.shared_data
@pytest.mark.slow
def test_global_init_in_a_sinus_does_not_stop_on_a_slid_pose():
    """Rendered sinus endoscopy (head phantom): from 30 deg / 20 mm, every start is recovered (10 starts here,
    two per frame; the 20-start figures below are from the benchmark run).

    In a cavity a pose slid along the passage also finds support for a few hundred points; the search
    must not stop on it (it did in 3 of these 20 starts while it stopped at 99.5 % coarse support).

    The search budget is a number of candidate poses (deterministic under load). 320 (one second's worth on a
    quiet core) misses 1 of these 20 starts; 640, 1280 and 2560 recovered all 20 when measured. 640, the smallest
    that did, is used here (the product sizes the search from its time budget), so the sinus case costs a few seconds
    per start, not the 1 s of the laparoscopy case (see the benchmarks)."""
    from SurgicalAICore.resources import shared_data_dir

    if not (shared_data_dir() / "ct" / "head_phantom").is_dir():
        pytest.skip("development data not present: ../shared/data/ct/head_phantom")
    from SurgicalDepthLib.registration.evaluation import prepare, run_trials

    setup = prepare("sinus", n_frames=5, seed=1)

    def register(cloud, target, init):
        g = global_init(cloud, target, prior=init, rotation_range_deg=35.0, translation_range_mm=25.0, budget_s=20.0,
                        candidates=640)
        return icp(cloud, target, g.matrix).matrix

    rows = run_trials(setup, {"ours": register}, misalignments=((30.0, 20.0),), trials_per_frame=2, seed=2)
    assert len(rows) == 10
    assert all(r["tre_mm"] < 1.0 for r in rows), sorted(round(r["tre_mm"], 2) for r in rows)[-5:]
    # CPU time: the search budget is counted in candidate poses, so its cost does not depend on the load of a
    # shared machine, while its wall time does (about 4 CPU-s per start at 1280 candidates on one thread)
    assert np.median([r["cpu_seconds"] for r in rows]) < 15.0  # two torch threads count twice
