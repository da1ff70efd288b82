"""Is a fit pinned by the surface, or only by where it started? Re-fit from a few starts around it and see.

The point-to-plane conditioning flags a view down a passage as able to slide, and in a bronchoscopy tube that
is so: a right fit there is right because its start was, and re-fits from 3 deg / 3 mm around it end 5-16 mm
away. A narrow view that still sees the passage's bends is pinned: its re-fits return to within a fraction of a
millimetre. The spread of the re-fits is what the conditioning stands in for, measured instead of inferred.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from SurgicalDepthLib.registration.shapes import apply, rotation_about_axis

REFIT_DEG = 3.0       # each re-fit starts this far around the fit, turned about one of the cloud's principal axes
REFIT_MM = 3.0        # and shifted this far along the same axis
# the tracker's local update at its benchmark settings: 12 iterations, 10 mm gate, one exact final step
LOCAL_UPDATE = {"max_iterations": 12, "gate_mm": 10.0, "exact_final": 1, "tolerance_mm": 5e-3}


def refit_spread(cloud: np.ndarray, matrix: np.ndarray, refit: Callable[[np.ndarray], np.ndarray]) -> float:
    """Worst RMS distance (mm, over the cloud's points) between the fit ``matrix`` and the poses ``refit(start)``
    returns from three starts around it, one per principal axis of the placed cloud.

    Orthogonal directions, not random ones: whatever direction the surface lets the cloud slide along has a
    component of at least 1/sqrt(3) of ``REFIT_MM`` on one of them (three random directions all missed a tube's
    axis about one time in thirty), and the first axis, the cloud's longest extent, is a tube's own."""
    cloud = np.asarray(cloud, float)
    placed = apply(matrix, cloud)
    centre = placed.mean(axis=0)
    axes = np.linalg.svd(placed - centre, full_matrices=False)[2]
    worst = 0.0
    for axis in axes:  # each re-fit is one local ICP: ~15-25 ms at 8 000 points on one CPU core
        start = np.eye(4)
        start[:3, :3] = rotation_about_axis(axis, REFIT_DEG)
        start[:3, 3] = centre - start[:3, :3] @ centre + REFIT_MM * axis
        moved = apply(refit(start @ matrix), cloud) - placed
        worst = max(worst, float(np.sqrt((moved * moved).sum(axis=1).mean())))
    return worst


def local_refit(cloud: np.ndarray, target, scale: bool = False, device: str | None = "cpu",
                max_points: int = 8000) -> Callable[[np.ndarray], np.ndarray]:
    """The tracker's local update (``LOCAL_UPDATE``) as a function of its start, for :func:`refit_spread`
    outside a tracker (a single registration, calibration rows)."""
    from SurgicalDepthLib.registration.register import register_cloud

    options = {**LOCAL_UPDATE, "max_points": max_points, "seed": 0}
    return lambda start: register_cloud(cloud, target, method="current", current=start, scale=scale,
                                        device=device, icp_options=options).matrix
