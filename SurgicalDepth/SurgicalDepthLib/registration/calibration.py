"""Calibration frames for the trust limits: registrations of rendered frames with known poses and their TRE.

For every frame of an :class:`~SurgicalDepthLib.registration.evaluation.EvalSetup` and every depth kind (true,
noisy: true depth with a smooth, systematic error of up to ~10 % plus pixel noise, like a depth network's;
predicted, when the setup has it) the frame is registered the way the tracker registers it: a local update
from starts off by inter-frame motion, and a relocalising global search from a larger offset. Each row holds
the :class:`~SurgicalDepthLib.registration.trust.TrustFeatures` and the TRE the fit really has; where the
conditioning alone keeps a fit from being trusted, also the spread of re-fits around it, as the tracker
measures it.
"""
from __future__ import annotations

import numpy as np

from SurgicalDepthLib.registration.evaluation import EvalSetup, cloud_from_depth, tre_mm
from SurgicalDepthLib.registration.register import register_cloud
from SurgicalDepthLib.registration.shapes import apply, perturbation
from SurgicalDepthLib.registration.pinning import LOCAL_UPDATE, local_refit, refit_spread
from SurgicalDepthLib.registration.trust import features, only_conditioning_fails

LOCAL_STARTS = ((1.0, 1.0), (3.0, 3.0), (6.0, 5.0))   # deg, mm: what the motion model leaves to ICP
GLOBAL_START = (15.0, 10.0)                              # a relocalisation around a stale pose


def noisy_depth(depth: np.ndarray, rng: np.random.Generator, strength: float = 0.1,
                pixel_noise: float = 0.01) -> np.ndarray:
    """Depth with a smooth error field: a global gain, a tilt across the image and a radial bowl, together up
    to about ``strength``, plus Gaussian pixel noise (``pixel_noise`` relative)."""
    h, w = depth.shape
    v, u = np.mgrid[0:h, 0:w]
    x, y = (u - w / 2) / (w / 2), (v - h / 2) / (h / 2)
    gain, tx, ty, bowl = rng.uniform(-1, 1, size=4) * strength * np.array([0.5, 0.25, 0.25, 0.25])
    field = 1 + gain + tx * x + ty * y + bowl * (x * x + y * y - 0.5)
    out = depth * field * (1 + pixel_noise * rng.normal(size=depth.shape))
    return np.where(depth > 0, out, 0.0)


def _depths(frame, rng):
    yield "true", frame.depth_true, False
    yield "noisy", noisy_depth(frame.depth_true, rng), True
    if frame.depth_pred is not None:
        yield "pred", frame.depth_pred, True


def calibration_rows(setup: EvalSetup, *, seed: int = 0, max_points: int = 8000, with_global: bool = True,
                     budget_s: float = 0.5, device: str = "cpu") -> list[dict]:
    """One row per (frame, depth kind, start): trust features, TRE and the registration's kind."""
    rng = np.random.default_rng(seed)
    rows = []
    for frame in setup.frames:
        for kind, depth, scale in _depths(frame, rng):
            valid = frame.valid & np.isfinite(depth) & (depth > 0)
            cloud = cloud_from_depth(depth, valid, setup.camera, max_points, rng)
            centre = apply(frame.pose, cloud).mean(axis=0)
            starts = [("local", a, s) for a, s in LOCAL_STARTS]
            if with_global:
                starts.append(("global", *GLOBAL_START))
            for how, angle, shift in starts:
                start = perturbation(angle, shift, centre, rng) @ frame.pose
                options = LOCAL_UPDATE if how == "local" else {}
                reg = register_cloud(cloud, setup.target, method="current" if how == "local" else "global",
                                     current=start, scale=scale, budget_s=budget_s, seed=len(rows), device=device,
                                     icp_options={"max_points": max_points, "seed": len(rows), **options})
                f = features(reg.icp, start, cloud)
                if how == "global":  # the tracker discounts the motion allowed since the last good pose
                    f.moved_mm, f.turned_deg = max(0.0, f.moved_mm - shift), max(0.0, f.turned_deg - angle)
                if only_conditioning_fails(f):
                    f.spread_mm = refit_spread(cloud, reg.matrix, local_refit(cloud, setup.target, scale, device,
                                                                              max_points))
                rows.append({**f.as_dict(), "tre_mm": tre_mm(reg.matrix, frame.pose, setup.target_points),
                             "scenario": setup.scenario_name, "frame": frame.index, "depth": kind, "start": how,
                             "start_deg": angle, "start_mm": shift})
    return rows
