"""Depth-aware registration: a per-frame depth scale and shift estimated with the pose.

A depth network's error is mostly smooth and systematic. A similarity ICP already absorbs a depth *scale*
(scaling every point along its ray about the camera centre is a uniform scale); a depth *shift*
(``z' = z + t``, every point moved along its own ray) is not a similarity, so it is estimated here together
with the pose (:func:`joint_depth_shift`), between a robust similarity fit and a final one that both go
through :func:`register_cloud`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from SurgicalDepthLib.registration.icp import MAX_LOG_SCALE
from SurgicalDepthLib.registration.register import RegistrationResult, register_cloud
from SurgicalDepthLib.registration.target import RegistrationTarget


@dataclass
class DepthCorrectedResult:
    registration: RegistrationResult
    shift_mm: float           # depth offset added along each ray
    scale: float              # the similarity scale of the final fit (the depth scale)
    cloud: np.ndarray         # the corrected camera-frame cloud the final fit used


def _skew_exp(w: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(w).as_matrix()


def joint_depth_shift(cloud: np.ndarray, target: RegistrationTarget, pose: np.ndarray, *, iterations: int = 10,
                      gate_mm: float = 5.0, max_relative: float = 0.15) -> tuple[np.ndarray, float]:
    """(pose, depth offset mm) refined together by point-to-plane Gauss-Newton from ``pose``.

    Unknowns: rotation, translation, log-scale (about the cloud's centre) and the offset ``t`` that moves each
    point along its ray (``z + t``). Solving them together matters: in turns, the scale and translation absorb
    most of each offset step and the offset creeps. Tukey weights on the residuals trim outliers; ``t`` is
    bounded to ``max_relative`` of the median depth."""
    p = np.asarray(cloud, float)
    rays = p / p[:, 2:3]
    bound = max_relative * float(np.median(p[:, 2]))
    m = np.asarray(pose, float).copy()
    t = 0.0
    log_scale = 0.0  # relative to ``pose``; bounded like the ICP's (a free scale shrinks a bad cloud to a point)
    for _ in range(iterations):
        w = (p + t * rays) @ m[:3, :3].T + m[:3, 3]
        q, n, d = target.closest(w, exact=False)
        r = ((w - q) * n).sum(1)
        near = d <= gate_mm
        if near.sum() < 20:
            break
        sigma = max(1.4826 * float(np.median(np.abs(r[near]))), 1e-3)
        u = np.clip(r / (4.685 * sigma), -1, 1)
        wt = np.where(near & (np.abs(u) < 1), (1 - u * u) ** 2, 0.0)
        c = (wt[:, None] * w).sum(0) / max(wt.sum(), 1e-12)
        x = w - c
        rho = max(float(np.sqrt((wt * (x * x).sum(1)).sum() / max(wt.sum(), 1e-12))), 1e-6)
        xs = x / rho
        J = np.column_stack([np.cross(xs, n), n, (xs * n).sum(1), ((rays @ m[:3, :3].T) * n).sum(1)])
        A = (J * wt[:, None]).T @ J
        b = -(J * wt[:, None]).T @ r
        d_ = np.sqrt(np.clip(np.diag(A), 1e-12, None))
        delta = np.linalg.solve(A / np.outer(d_, d_) + 1e-9 * np.eye(8), b / d_) / d_
        R = _skew_exp(delta[:3] / rho)
        ds = float(np.clip(delta[6] / rho, -0.1, 0.1))
        ds = float(np.clip(ds, -MAX_LOG_SCALE - log_scale, MAX_LOG_SCALE - log_scale))
        log_scale += ds
        s = float(np.exp(ds))
        inc = np.eye(4)
        inc[:3, :3] = s * R
        inc[:3, 3] = c + delta[3:6] - s * R @ c
        m = inc @ m
        t = float(np.clip(t + delta[7], -bound, bound))
        if np.linalg.norm(delta[:6]) < 1e-4 and abs(delta[7]) < 1e-3:
            break
    return m, t


def register_depth_aware(cloud: np.ndarray, target: RegistrationTarget, start: np.ndarray, *,
                         device: str | None = "cpu", icp_options: dict | None = None,
                         **register_kwargs) -> DepthCorrectedResult:
    """Pose, depth scale and depth offset of a camera-frame ``cloud`` from ``start``: a robust similarity fit,
    the joint pose + offset refinement, then a final fit of the corrected cloud (its statistics feed the trust)."""
    pts = np.asarray(cloud, float)
    pts = pts[np.isfinite(pts).all(axis=1) & (pts[:, 2] > 1e-6)]
    first = register_cloud(pts, target, current=start, scale=True, device=device, icp_options=icp_options,
                           **register_kwargs)
    pose, shift = joint_depth_shift(pts, target, first.matrix)
    corrected = pts + shift * (pts / pts[:, 2:3])
    reg = register_cloud(corrected, target, current=pose, scale=True, device=device, icp_options=icp_options,
                         **register_kwargs)
    return DepthCorrectedResult(reg, shift, reg.icp.scale, corrected)
