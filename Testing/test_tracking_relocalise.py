"""The tracker's relocalisation off the frame path (background=True): a frame it cannot explain returns at once
holding the last good pose while a worker searches; a later frame takes and verifies what it found.

The tests wait on the search explicitly (``wait_for_search``), never on a clock, so they are deterministic.
"""
import threading
import time

import numpy as np
import pytest

from SurgicalAICore.errors import OperationCancelled
from SurgicalAICore.progress import CancelToken
from SurgicalDepthLib.registration import shapes
from SurgicalDepthLib.registration.icp import pose_error
from SurgicalDepthLib.registration.initial_pose import global_init
from SurgicalDepthLib.registration.tracking import FrameTracker
from organ_view import camera_cloud as _cloud, organ_and_view


@pytest.fixture(scope="module")
def organ():
    return organ_and_view()


def _tracked(target, view, rng, background=True):
    truth = np.eye(4)
    tracker = FrameTracker(target, truth, max_points=3000, background=background, global_budget_s=0.5)
    for _ in range(2):
        truth = shapes.perturbation(2, 1.5, view.mean(0), rng) @ truth
        r = tracker.update(_cloud(view, truth))
        assert r.state == "trusted" and not r.relocalising
    return tracker, truth


def _search_threads():
    return [t for t in threading.enumerate() if t.name.startswith("relocalise")]


def test_background_relocalisation_holds_the_last_good_pose_then_verifies_the_found_one(organ):
    target, view = organ
    tracker, truth = _tracked(target, view, np.random.default_rng(9))
    good = tracker.last_good.copy()
    jump = shapes.perturbation(40, 25, view.mean(0), np.random.default_rng(3)) @ truth
    cloud = _cloud(view, jump)
    r = tracker.update(cloud)
    # the frame returns without the search: not trusted, the last good pose (never a wrong one) when lost
    assert r.state != "trusted" and r.relocalising and not r.relocalised
    assert not r.lost or np.array_equal(r.matrix, good)
    assert tracker.search.running or tracker.search.pending
    for _ in range(4):  # each later frame takes the finished search, verifies it on its own cloud
        assert tracker.wait_for_search(timeout=60)
        r = tracker.update(cloud)
        assert r.state != "trusted" or max(pose_error(r.matrix, jump)[:2]) < 0.5
        if r.state == "trusted":
            break
    assert r.state == "trusted" and r.relocalised and not r.relocalising
    assert max(pose_error(r.matrix, jump)[:2]) < 0.5 and np.allclose(tracker.last_good, r.matrix)
    tracker.close()
    assert not _search_threads(), "close() stops the worker"


def test_a_trusted_frame_cancels_the_search_and_close_stops_the_worker(organ):
    target, view = organ
    tracker, truth = _tracked(target, view, np.random.default_rng(5))
    lost = tracker.update(_cloud(view, shapes.perturbation(40, 25, view.mean(0), np.random.default_rng(3)) @ truth))
    assert lost.relocalising
    job = tracker.search.job
    back = tracker.update(_cloud(view, truth))  # the camera is back where it was: tracking resumes locally
    assert back.state == "trusted" and not back.relocalising and tracker.search.job is None
    assert job.cancel.cancelled  # the stale search stops at its next batch; its pose is never taken
    tracker.close()
    assert not _search_threads()


def test_foreground_mode_searches_inside_the_frame(organ):
    target, view = organ
    tracker, truth = _tracked(target, view, np.random.default_rng(9), background=False)
    r = tracker.update(_cloud(view, shapes.perturbation(40, 25, view.mean(0), np.random.default_rng(3)) @ truth))
    assert r.relocalised and not r.relocalising and tracker.search is None


def test_global_init_stops_on_cancel(organ):
    target, view = organ
    token = CancelToken()
    token.cancel()
    t0 = time.process_time()
    with pytest.raises(OperationCancelled):
        global_init(view, target, prior=np.eye(4), budget_s=5.0, cancel=token)
    assert time.process_time() - t0 < 1.0  # before the first batch, not after five seconds' worth


class _CancelAfter(CancelToken):
    """A token that cancels itself at its ``n + 1``-th check (a user pressing Cancel mid-search)."""

    def __init__(self, n: int):
        super().__init__()
        self.n, self.checks = n, 0

    def raise_if_cancelled(self) -> None:
        self.checks += 1
        if self.checks > self.n:
            self.cancel()
        super().raise_if_cancelled()


def test_register_cloud_hands_its_cancel_token_to_the_global_search(organ):
    """The tracker's worker searches through register_cloud(method='global'): a cancel after the start must stop
    the search between its batches, not after its budget (here 30 s worth of candidates)."""
    from SurgicalDepthLib.registration.register import register_cloud

    target, view = organ
    token = _CancelAfter(2)  # register_cloud's own progress step and the search's first batch pass
    t0 = time.process_time()
    with pytest.raises(OperationCancelled):
        register_cloud(view, target, method="global", current=np.eye(4), budget_s=30.0, cancel=token)
    assert token.checks == 3 and time.process_time() - t0 < 10.0


def test_the_worker_runs_below_the_frame_path_and_a_failed_search_yields_no_pose():
    import os

    from SurgicalDepthLib.registration.relocalise import WORKER_NICENESS, BackgroundSearch

    def niceness(cloud, prior, seed, cancel):
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    search = BackgroundSearch(niceness)
    search.submit(np.zeros((3, 3)), np.eye(4), 0, 0)
    expected = min(19, os.getpriority(os.PRIO_PROCESS, 0) + WORKER_NICENESS)  # 19: the lowest priority
    assert search.wait(timeout=30) and search.take() == expected
    search.search = lambda *args: 1 / 0
    search.submit(np.zeros((3, 3)), np.eye(4), 0, 1)
    assert search.wait(timeout=30) and search.take() is None and not search.pending
    search.close()
    assert not _search_threads()


def test_a_stale_search_is_replaced_by_one_on_the_newest_cloud(organ):
    target, view = organ
    tracker, truth = _tracked(target, view, np.random.default_rng(5))
    tracker.stale_frames = 0  # every search is stale one frame later
    cloud = _cloud(view, shapes.perturbation(40, 25, view.mean(0), np.random.default_rng(3)) @ truth)
    tracker.update(cloud)
    first = tracker.search.job
    r = tracker.update(cloud)
    # the first search was either finished and taken by this frame, or cancelled and replaced: never left to run
    assert r.relocalised or first.cancel.cancelled
    assert tracker.search.job is not first and tracker.search.job.frame == tracker.frames
    tracker.close()
    assert first.future.done() and not _search_threads()
