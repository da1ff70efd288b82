"""Frame-to-frame registration with an honest three-state confidence.

Each frame starts from the motion model's prediction (or an external tracker's pose). The fit is judged by
:mod:`trust` (trusted / uncertain / lost, limits calibrated on frames with known TRE); a frame that is not
trusted triggers a global search around the last good pose: inside that frame (``background=False``, the
default: deterministic, what a recorded sweep wants), or in a worker thread (``background=True``, live video)
while the frame returns at once, holding the last good pose; a later frame takes the found pose and verifies it
on its own cloud with a short ICP before it can be trusted (:mod:`relocalise`).
*Uncertain* needs a recent trusted frame: the motion-model agreement it rests on means nothing while the start
pose is unverified.
Only a trusted pose is published (the transform node follows it) and moves the motion model on; an uncertain
pose is reported but not published; a lost frame reports the last good pose, held, so a run of frames the
tracker cannot explain never drags the pose away.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from SurgicalAICore.mrml.transforms import set_matrix
from SurgicalAICore.progress import CancelToken
from SurgicalDepthLib.registration.icp import ICPResult
from SurgicalDepthLib.registration.motion import MotionModel, check_rigid
from SurgicalDepthLib.registration.pinning import refit_spread
from SurgicalDepthLib.registration.quality import RegistrationQuality
from SurgicalDepthLib.registration.register import RegistrationResult, register_cloud
from SurgicalDepthLib.registration.relocalise import BackgroundSearch
from SurgicalDepthLib.registration.target import RegistrationTarget
from SurgicalDepthLib.registration.trust import (
    LOST,
    TRUSTED,
    UNCERTAIN,
    TrustCalibration,
    TrustFeatures,
    classify,
    features,
    only_conditioning_fails,
    rank,
)


MAX_UNCERTAIN_FRAMES = 5  # after this many frames without a trusted one, an uncertain fit counts as lost


@dataclass
class TrackResult:
    matrix: np.ndarray    # the pose to show: the new fit when trusted or uncertain, the last good one when lost
    quality: RegistrationQuality
    icp: ICPResult
    relocalised: bool     # the global search ran for this frame (background: its pose was taken and verified)
    lost: bool            # state == 'lost': matrix is the last good pose, held
    seconds: float
    state: str = TRUSTED  # trusted / uncertain / lost (see registration.trust)
    reason: str = ""      # why not trusted
    estimate: np.ndarray = field(default_factory=lambda: np.eye(4))  # the fit itself, whatever its state
    features: TrustFeatures | None = None
    relocalising: bool = False  # a background global search is in flight (or done, its pose not yet taken)

    @property
    def trusted(self) -> bool:
        return self.state == TRUSTED


class FrameTracker:
    """Keeps a camera-to-CT pose up to date from successive camera-frame clouds.

    ``max_points`` subsamples each cloud (speed), ``exact_final`` exact-neighbour iterations polish each
    update; the transform node, if given, follows every trusted frame and only those."""

    def __init__(self, target: RegistrationTarget, initial_pose: np.ndarray, *, scale: bool = False,
                 transform_node=None, max_rms_mm: float = 1.5, min_inlier_fraction: float = 0.3,
                 max_points: int = 10000, iterations: int = 12, exact_final: int = 0, gate_mm: float = 10.0,
                 global_budget_s: float = 1.0, search_deg: float = 45.0, search_mm: float = 30.0,
                 device: str | None = "cpu", calibration: TrustCalibration | None = None,
                 max_mm_per_frame: float = 8.0, max_deg_per_frame: float = 8.0, background: bool = False,
                 stale_frames: int = 90):
        self.target = target
        self.motion = MotionModel(initial_pose, max_mm=max_mm_per_frame, max_deg=max_deg_per_frame, guessed=True)
        self.scale = scale
        self.transform_node = transform_node
        self.max_rms_mm = max_rms_mm
        self.min_inlier_fraction = min_inlier_fraction
        self.max_points = max_points
        self.iterations = iterations
        self.exact_final = exact_final
        self.gate_mm = gate_mm
        self.global_budget_s = global_budget_s
        self.search_deg = search_deg
        self.search_mm = search_mm
        self.device = device
        self.calibration = calibration
        self.frames = 0
        self.anchored = False   # a frame has been trusted since the start pose (which may be a guess)
        # a background search older than this many frames is replaced by one on the newest cloud
        self.stale_frames = stale_frames
        self.search = BackgroundSearch(self._search_pose) if background else None
        self._warm()

    def _warm(self) -> None:
        """Build the target's k-d tree and its tensors now, once: built lazily, they fell on the first frame
        that needed them (the first global search), a frame several hundred milliseconds late."""
        from SurgicalAICore.device import select_device
        from SurgicalDepthLib.registration.icp import TargetTensors

        self.target.kdtree  # noqa: B018 - the property builds and keeps the tree
        TargetTensors.of(self.target, select_device(self.device))

    @property
    def pose(self) -> np.ndarray:
        return self.motion.last_good

    @property
    def last_good(self) -> np.ndarray:
        return self.motion.last_good

    def _register(self, cloud, method: str, start: np.ndarray, icp_options: dict, seed: int | None = None,
                  cancel: CancelToken | None = None) -> RegistrationResult:
        seed = self.frames if seed is None else seed
        return register_cloud(cloud, self.target, method=method, current=start, scale=self.scale,
                              max_rms_mm=self.max_rms_mm, min_inlier_fraction=self.min_inlier_fraction,
                              budget_s=self.global_budget_s, search_deg=self.search_deg, search_mm=self.search_mm,
                              seed=seed, device=self.device, cancel=cancel,
                              icp_options={"max_points": self.max_points, "seed": seed, **icp_options})

    def _search_pose(self, cloud: np.ndarray, prior: np.ndarray, seed: int, cancel: CancelToken) -> np.ndarray:
        """The worker's search: the frame path's global registration around ``prior``, cancellable between the
        search's batches."""
        return self._register(cloud, "global", prior, {}, seed=seed, cancel=cancel).matrix

    def wait_for_search(self, timeout: float | None = None) -> bool:
        """Block until the background search in flight is done (True), e.g. in a test; True when there is none."""
        return self.search is None or self.search.wait(timeout)

    def close(self) -> None:
        """Cancel a background search and stop its worker thread."""
        if self.search is not None:
            self.search.close()

    def _judge(self, registered: RegistrationResult, start: np.ndarray, cloud: np.ndarray, slack: tuple):
        f = features(registered.icp, start, cloud)
        # motion the model allows since the last good pose is not evidence against the fit
        f.moved_mm = max(0.0, f.moved_mm - slack[0])
        f.turned_deg = max(0.0, f.turned_deg - slack[1])
        if only_conditioning_fails(f, self.calibration):
            options = self._local_options()
            f.spread_mm = refit_spread(cloud, registered.matrix,
                                       lambda s: self._register(cloud, "current", s, options).matrix)
        state, reason = classify(f, self.calibration)
        return state, reason, f

    def update(self, cloud: np.ndarray, prior: np.ndarray | None = None) -> TrackResult:
        """Register one frame; ``prior`` is an external tracker's camera-to-CT pose (must be rigid)."""
        start_time = time.perf_counter()
        cloud = np.asarray(cloud, dtype=np.float64)
        self.frames += 1
        start = check_rigid(prior) if prior is not None else self.motion.predict()
        local = self._register(cloud, "current", start, self._local_options())
        best = (local, *self._judge(local, start, cloud, (0.0, 0.0)))
        relocalised = False
        if best[1] == TRUSTED:
            if self.search is not None:
                self.search.cancel()  # tracking again: a search in flight is no longer needed
        elif self.search is None:
            relocalised = True
            best = self._better(best, self._register(cloud, "global", self.motion.last_good, {}), cloud)
        else:
            best, relocalised = self._background(best, cloud)
        registered, state, reason, f = best
        if state == UNCERTAIN and (not self.anchored or self.motion.frames_since_good >= MAX_UNCERTAIN_FRAMES):
            # agreement with the motion model is evidence only while the model rests on a recent trusted pose:
            # from an unverified start, a wrong pose agrees with itself frame after frame
            state = LOST
            reason = ("no trusted frame yet: " if not self.anchored else
                      f"no trusted frame for {self.motion.frames_since_good} frames: ") + reason
        if state == TRUSTED:
            self.anchored = True
            self.motion.update(registered.matrix)
            if self.transform_node is not None:
                set_matrix(self.transform_node, registered.matrix)
        else:
            self.motion.miss()
        shown = self.motion.last_good if state == LOST else registered.matrix
        return TrackResult(shown.copy(), registered.quality, registered.icp, relocalised, state == LOST,
                           time.perf_counter() - start_time, state, reason, registered.matrix.copy(), f,
                           self.search is not None and self.search.pending)

    def _better(self, best: tuple, again: RegistrationResult, cloud: np.ndarray) -> tuple:
        """The relocalised fit when it ranks above ``best``; judged against the last good pose, less the motion
        the bounded velocity allows since."""
        judged = (again, *self._judge(again, self.motion.last_good, cloud, self.motion.reach()))
        if (rank(judged[1]), judged[0].icp.inlier_fraction) > (rank(best[1]), best[0].icp.inlier_fraction):
            return judged
        return best

    def _background(self, best: tuple, cloud: np.ndarray) -> tuple[tuple, bool]:
        """Take a finished search's pose (verified by a short ICP on this frame's cloud), else keep or start one.

        First, for an uncertain fit, a second look in the frame: the fit polished by the full ICP the search ends with,
        judged as the search's pose is (against the last good pose, less the motion allowed since). It rescues
        the frames the search used to rescue by finding the local fit again (e.g. a slow start of the motion model,
        a fit not yet converged) at the cost of one ICP instead of a search."""
        if best[1] == UNCERTAIN:  # a lost fit is not worth polishing: that costs as much as a frame
            best = self._better(best, self._register(cloud, "current", best[0].matrix, {}), cloud)
            if best[1] == TRUSTED:
                self.search.cancel()
                return best, False
        found = self.search.take()
        relocalised = found is not None
        if relocalised:
            verified = self._register(cloud, "current", found, self._local_options())
            best = self._better(best, verified, cloud)
        job = self.search.job
        if best[1] != TRUSTED and (job is None or self.frames - job.frame > self.stale_frames):
            self.search.submit(cloud, self.motion.last_good, self.frames, self.frames)
        return best, relocalised

    def _local_options(self) -> dict:
        return {"max_iterations": self.iterations, "gate_mm": self.gate_mm, "exact_final": self.exact_final,
                "tolerance_mm": 5e-3}
