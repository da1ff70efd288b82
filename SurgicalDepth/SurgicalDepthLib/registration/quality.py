"""How far a registration can be trusted, from its fit: residual, inlier share, constraint, scale."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


from SurgicalDepthLib.registration.icp import ICPResult


@dataclass
class RegistrationQuality:
    rms_mm: float
    inlier_fraction: float
    scale: float
    well_constrained: bool
    trusted: bool
    reason: str   # why not trusted ('' when trusted)


def assess(result: ICPResult, max_rms_mm: float = 1.5, min_inlier_fraction: float = 0.3,
           scale_range=(0.5, 2.0)) -> RegistrationQuality:
    """Quality flag: a registration is trusted only when it fits tightly, most of the cloud supports
    it, the surface pins all degrees of freedom and any scale is plausible."""
    reasons = []
    if not np.isfinite(result.rms_mm) or result.rms_mm > max_rms_mm:
        reasons.append(f"residual {result.rms_mm:.2f} mm > {max_rms_mm:g} mm")
    if result.inlier_fraction < min_inlier_fraction:
        reasons.append(f"only {100 * result.inlier_fraction:.0f}% of the points match the surface")
    if not result.well_constrained:
        reasons.append("the surface does not pin the pose (it can slide)")
    if not scale_range[0] <= result.scale <= scale_range[1]:
        reasons.append(f"scale {result.scale:.2f} is implausible")
    return RegistrationQuality(result.rms_mm, result.inlier_fraction, result.scale, result.well_constrained,
                               not reasons, "; ".join(reasons))
