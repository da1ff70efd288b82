"""Frame-to-frame registration: each frame starts from the previous pose; when the fit is lost a
global search around the last good pose takes over."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

import numpy as np

from SurgicalAICore.mrml.transforms import set_matrix
from SurgicalDepthLib.registration.icp import ICPResult
from SurgicalDepthLib.registration.quality import RegistrationQuality
from SurgicalDepthLib.registration.register import RegistrationResult, register_cloud
from SurgicalDepthLib.registration.target import RegistrationTarget


@dataclass
class TrackResult:
    matrix: np.ndarray
    quality: RegistrationQuality
    icp: ICPResult
    relocalised: bool     # the global search ran for this frame
    lost: bool            # still not trusted after relocalising; the pose is the last good one
    seconds: float


class FrameTracker:
    """Keeps a camera-to-CT pose up to date from successive camera-frame clouds.

    ``max_points`` subsamples each cloud (speed), ``exact_final`` exact-neighbour iterations
    polish each update; the transform node, if given, follows every trusted frame."""

    def __init__(self, target: RegistrationTarget, initial_pose: np.ndarray, *, scale: bool = False,
                 transform_node=None, max_rms_mm: float = 1.5, min_inlier_fraction: float = 0.3,
                 max_points: int = 10000, iterations: int = 12, exact_final: int = 0, gate_mm: float = 10.0,
                 global_budget_s: float = 1.0, search_deg: float = 45.0, search_mm: float = 30.0,
                 device: Optional[str] = "cpu"):
        self.target = target
        self.pose = np.asarray(initial_pose, float).copy()
        self.last_good = self.pose.copy()
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
        self.frames = 0
        self.ref_rms: Optional[float] = None       # running fit of recent trusted frames
        self.ref_inliers: Optional[float] = None

    def _register(self, cloud, method: str, start: np.ndarray, icp_options: dict) -> RegistrationResult:
        return register_cloud(cloud, self.target, method=method, current=start, scale=self.scale,
                              max_rms_mm=self.max_rms_mm, min_inlier_fraction=self.min_inlier_fraction,
                              budget_s=self.global_budget_s, search_deg=self.search_deg, search_mm=self.search_mm,
                              seed=self.frames, device=self.device,
                              icp_options={"max_points": self.max_points, "seed": self.frames, **icp_options})

    def _suspicious(self, result: ICPResult) -> bool:
        """A fit clearly worse than the recent good ones means the local update slid into a wrong
        pose, even when it is within the absolute limits."""
        if self.ref_rms is None:
            return False
        return (result.rms_mm > max(2.5 * self.ref_rms, self.ref_rms + 0.5)
                or result.inlier_fraction < 0.8 * self.ref_inliers)

    def update(self, cloud: np.ndarray) -> TrackResult:
        start = time.perf_counter()
        self.frames += 1
        local = self._register(cloud, "current", self.pose,
                               {"max_iterations": self.iterations, "gate_mm": self.gate_mm,
                                "exact_final": self.exact_final, "tolerance_mm": 5e-3})
        result, quality = local.icp, local.quality
        relocalised = False
        if not quality.trusted or self._suspicious(result):
            relocalised = True
            again = self._register(cloud, "global", self.last_good, {})
            # keep a trusted fit first, then whichever explains more of the cloud, then the tighter one
            if (again.quality.trusted, again.icp.inlier_fraction, -again.icp.rms_mm) > (
                    quality.trusted, result.inlier_fraction - 0.02, -result.rms_mm):
                result, quality = again.icp, again.quality
        if quality.trusted:
            self.pose = result.matrix
            self.last_good = result.matrix
            a = 0.3 if self.ref_rms is not None else 1.0
            self.ref_rms = (1 - a) * (self.ref_rms or 0.0) + a * result.rms_mm
            self.ref_inliers = (1 - a) * (self.ref_inliers or 0.0) + a * result.inlier_fraction
            if self.transform_node is not None:
                set_matrix(self.transform_node, result.matrix)
        return TrackResult(self.pose.copy(), quality, result, relocalised, not quality.trusted,
                           time.perf_counter() - start)
