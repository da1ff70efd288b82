"""Initial camera-to-CT pose: from a tracker, from paired landmarks, or from a global search.

All poses are 4x4 matrices mapping camera-frame points (OpenCV, mm) to CT RAS.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from SurgicalAICore.errors import InputError
from SurgicalAICore.progress import CancelToken

from SurgicalDepthLib.registration.icp import TargetTensors, check_cloud, cpu_threads, icp_batch, rotation_matrix
from SurgicalDepthLib.registration.target import RegistrationTarget


def _matrix(m, what: str) -> np.ndarray:
    a = np.asarray(m, dtype=np.float64)
    if a.shape != (4, 4) or not np.all(np.isfinite(a)):
        raise InputError(f"The {what} must be a finite 4x4 matrix.")
    if abs(np.linalg.det(a[:3, :3])) < 1e-9 or not np.allclose(a[3], [0, 0, 0, 1]):
        raise InputError(f"The {what} is not an invertible affine transform.")
    return a


def init_from_tracking(tracker_to_ras: np.ndarray, camera_to_tracker: np.ndarray | None = None) -> np.ndarray:
    """Camera-to-RAS from a tracked endoscope: the tracker's marker-to-RAS transform composed with the
    hand-eye calibration (camera-to-marker); identity calibration when none is given."""
    pose = _matrix(tracker_to_ras, "tracking transform")
    if camera_to_tracker is not None:
        pose = pose @ _matrix(camera_to_tracker, "hand-eye calibration")
    return pose


def landmark_transform(source: np.ndarray, target: np.ndarray, scale: bool = False) -> np.ndarray:
    """Least-squares (Umeyama) 4x4 mapping paired ``source`` points onto ``target`` points.

    Rigid by default; ``scale=True`` adds one uniform scale. Fewer than 3 pairs, unequal counts,
    non-finite or collinear points are an InputError."""
    src = np.asarray(source, dtype=np.float64)
    dst = np.asarray(target, dtype=np.float64)
    if src.ndim != 2 or dst.ndim != 2 or src.shape[1] != 3 or dst.shape[1] != 3:
        raise InputError("Landmarks must be lists of 3-D points.")
    if len(src) != len(dst):
        raise InputError(f"Landmarks must be paired: {len(src)} on the video/cloud but {len(dst)} on the CT.")
    if len(src) < 3:
        raise InputError(f"At least 3 landmark pairs are needed, got {len(src)}.")
    if not (np.all(np.isfinite(src)) and np.all(np.isfinite(dst))):
        raise InputError("Landmarks contain non-finite coordinates.")
    for pts, where in ((src, "video/cloud"), (dst, "CT")):
        sv = np.linalg.svd(pts - pts.mean(axis=0), compute_uv=False)
        if sv[0] < 1e-9 or sv[1] / sv[0] < 1e-3:
            raise InputError(
                f"The {where} landmarks are collinear (or coincide); pick at least 3 points not on one line."
            )
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / len(src)
    U, S, Vt = np.linalg.svd(cov)
    D = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        D[2, 2] = -1.0
    R = U @ D @ Vt
    s = float(np.trace(np.diag(S) @ D) / (xs**2).sum(axis=1).mean()) if scale else 1.0
    m = np.eye(4)
    m[:3, :3] = s * R
    m[:3, 3] = mu_d - s * R @ mu_s
    return m


def points_from_pixels(pixels_uv: np.ndarray, depth_mm: np.ndarray, camera) -> np.ndarray:
    """Camera-frame points (N, 3) of landmarks picked on a depth map at pixels (u, v), using the depth
    at the nearest pixel; a pick without depth is an InputError."""
    uv = np.asarray(pixels_uv, dtype=np.float64).reshape(-1, 2)
    depth = np.asarray(depth_mm, dtype=np.float64)
    camera.check_frame(depth.shape[1], depth.shape[0])
    cols, rows = np.rint(uv[:, 0]).astype(int), np.rint(uv[:, 1]).astype(int)
    inside = (cols >= 0) & (cols < depth.shape[1]) & (rows >= 0) & (rows < depth.shape[0])
    if not inside.all():
        raise InputError(
            f"Landmark pixel {tuple(uv[~inside][0])} is outside the {depth.shape[1]}x{depth.shape[0]} frame."
        )
    z = depth[rows, cols]
    if not np.all(np.isfinite(z) & (z > 0)):
        raise InputError(
            f"Landmark pixel {tuple(uv[~(np.isfinite(z) & (z > 0))][0])} has no depth; pick on the tissue."
        )
    return np.stack([(uv[:, 0] - camera.cx) / camera.fx * z, (uv[:, 1] - camera.cy) / camera.fy * z, z], axis=1)


def random_rotations(n: int, max_angle_deg: float | None, rng: np.random.Generator) -> np.ndarray:
    """(n, 3, 3) rotations: uniform on SO(3) (``max_angle_deg`` None) or with angles uniform up to it
    about uniformly random axes. The first one is the identity."""
    if max_angle_deg is None:
        q = rng.normal(size=(n, 4))
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        w, x, y, z = q.T
        R = np.stack(
            [
                1 - 2 * (y * y + z * z),
                2 * (x * y - z * w),
                2 * (x * z + y * w),
                2 * (x * y + z * w),
                1 - 2 * (x * x + z * z),
                2 * (y * z - x * w),
                2 * (x * z - y * w),
                2 * (y * z + x * w),
                1 - 2 * (x * x + y * y),
            ],
            axis=1,
        ).reshape(n, 3, 3)
    else:
        axis = rng.normal(size=(n, 3))
        axis /= np.linalg.norm(axis, axis=1, keepdims=True)
        angle = np.radians(max_angle_deg) * np.cbrt(rng.random(n))
        R = rotation_matrix(torch.as_tensor(axis * angle[:, None])).numpy()
    R[0] = np.eye(3)
    return R


@dataclass
class GlobalInitResult:
    matrix: np.ndarray
    inlier_fraction: float  # share of the subsampled cloud within the acceptance distance
    rms_mm: float
    candidates: int  # initial poses tried
    seconds: float


def global_init(
    cloud: np.ndarray,
    target: RegistrationTarget,
    prior: np.ndarray | None = None,
    *,
    rotation_range_deg: float | None = 35.0,
    translation_range_mm: float = 25.0,
    budget_s: float = 1.0,
    scale: bool = False,
    n_points: int = 400,
    batch: int = 64,
    iterations: int = 12,
    accept_mm: float = 2.5,
    seed: int = 0,
    device: str | None = "cpu",
    candidates: int | None = None,
    max_seconds: float | None = None,
    cancel: CancelToken | None = None,
) -> GlobalInitResult:
    """Coarse multi-start search: batches of sampled poses, each refined by a short ICP on a
    subsample of the cloud; the pose with the most points within ``accept_mm`` of the surface wins.

    With a ``prior`` pose (e.g. the tracker's or the last good one) rotations are sampled within
    ``rotation_range_deg`` about the cloud centre and shifts within ``translation_range_mm``;
    without one, rotations cover all of SO(3) and the cloud centre is placed at surface samples.
    The budget is counted in candidate poses, so the result does not depend on how busy the machine is:
    ``candidates`` (default ``CANDIDATES_PER_SECOND * budget_s``, what an unloaded core searches in
    ``SEARCH_SHARE`` of ``budget_s``; at least one batch); ``max_seconds`` (default
    ``CPU_CEILING * budget_s``, CPU seconds of this thread) is only a ceiling for a far slower machine.
    ``cancel`` is checked between batches (a tracker's background search that became stale).
    Then a short list is verified on a denser subsample. It never stops early on support alone: in a sinus a
    pose slid along the passage
    reached 99.5 % support on the coarse subsample in 3 of 20 starts from 30 deg / 20 mm. The search keeps the
    prior's scale (a free
    scale on a few hundred points from a rough start can shrink the cloud onto any patch); with
    ``scale`` the caller's final ICP estimates it."""
    from SurgicalAICore.device import select_device

    start = time.perf_counter()
    pts = check_cloud(cloud)
    rng = np.random.default_rng(seed)
    sub = pts[rng.choice(len(pts), min(n_points, len(pts)), replace=False)]
    dev = select_device(device)
    tt = TargetTensors.of(target, dev)
    src = torch.as_tensor(sub, dtype=torch.float64, device=dev)
    centre = sub.mean(axis=0)
    base = np.eye(4) if prior is None else np.asarray(prior, np.float64)
    if prior is None:
        rotation_range_deg = None
        anchors = target.points[rng.choice(len(target.points), 4096)]
    pool = [(-np.inf, 0.0, np.inf, base)]  # (score, support, rms, pose), best first
    tried = 0
    wanted = max(batch, round(CANDIDATES_PER_SECOND * budget_s) if candidates is None else int(candidates))
    ceiling = CPU_CEILING * budget_s if max_seconds is None else max_seconds
    cpu_start = time.thread_time()  # this thread's CPU time: other jobs on the machine do not advance it
    with cpu_threads(dev):
        while True:
            if cancel is not None:
                cancel.raise_if_cancelled()
            R = random_rotations(batch, rotation_range_deg, rng)
            if prior is None:
                # cloud centre lands on the surface; the camera-side offset is left to ICP
                dest = anchors[rng.integers(len(anchors), size=batch)]
            else:
                c_world = base[:3, :3] @ centre + base[:3, 3]
                shift = rng.uniform(-translation_range_mm, translation_range_mm, size=(batch, 3))
                shift[0] = 0.0
                dest = c_world + shift
            Rw = R @ base[:3, :3] if prior is not None else R
            init = np.tile(np.eye(4), (batch, 1, 1))
            init[:, :3, :3] = Rw
            init[:, :3, 3] = dest - Rw @ centre
            # the scale stays the prior's here: a free scale on a few hundred points and a rough
            # start can shrink the cloud onto any surface patch; the final ICP refines it
            M, _w, _res, _, _, _, _ = icp_batch(
                src,
                tt,
                torch.as_tensor(init, device=dev),
                scale=False,
                iterations=iterations,
                gate_mm=max(2 * translation_range_mm, 10.0),
            )
            p = src @ M[:, :3, :3].transpose(1, 2) + M[:, None, :3, 3]
            d = torch.linalg.norm(p - tt.gather(tt.lookup(p))[0], dim=-1)
            close = d <= accept_mm
            frac = close.double().mean(-1)
            rms = torch.sqrt((torch.where(close, d, torch.zeros_like(d)) ** 2).sum(-1) / close.sum(-1).clamp_min(1))
            score = frac - 1e-3 * rms  # more support first, then a tighter fit
            tried += batch
            for k in torch.topk(score, min(VERIFY_CANDIDATES, batch)).indices.tolist():
                pool.append((float(score[k]), float(frac[k]), float(rms[k]), M[k].cpu().numpy()))
            pool = _distinct_best(pool, VERIFY_CANDIDATES)
            if tried >= wanted or time.thread_time() - cpu_start >= ceiling:
                break
        best = _verify(pool, pts, tt, dev, rng, accept_mm, translation_range_mm)
    return GlobalInitResult(best[2], best[0], best[1], tried, time.perf_counter() - start)


# candidates that go on to the verification stage
VERIFY_CANDIDATES = 6
SEARCH_SHARE = 0.8  # of the budget; the rest is for verifying the short list
# candidate poses an unloaded core of the benchmark machine (docs/BENCHMARKS_registration.md) refines in
# SEARCH_SHARE of a second: 5 batches of 64
CANDIDATES_PER_SECOND = 320
CPU_CEILING = 5.0  # x budget_s of CPU seconds: stops a search only on a far slower machine


def _distinct_best(pool, k: int, min_shift_mm: float = 1.0, min_angle_deg: float = 1.0):
    """The ``k`` best-scoring poses, dropping near-duplicates of a better one."""
    kept = []
    for cand in sorted(pool, key=lambda c: -c[0]):
        if all(
            np.linalg.norm(cand[3][:3, 3] - o[3][:3, 3]) > min_shift_mm
            or rotation_error_deg(cand[3], o[3]) > min_angle_deg
            for o in kept
        ):
            kept.append(cand)
        if len(kept) == k:
            break
    return kept


def _verify(pool, pts: np.ndarray, tt, dev, rng, accept_mm: float, translation_range_mm: float):
    """Refine the short-listed poses on a denser subsample and keep the tightest fit.

    A few hundred points within ``accept_mm`` cannot tell the true pose from one slid along a tube
    or a groove (sinus, airway): both find support everywhere. With more points and half the
    acceptance distance the slid pose loses support while the true one keeps it.
    """
    if len(pool) == 1:
        return pool[0][1], pool[0][2], pool[0][3]
    dense = pts[rng.choice(len(pts), min(2000, len(pts)), replace=False)]
    src = torch.as_tensor(dense, dtype=torch.float64, device=dev)
    init = torch.as_tensor(np.stack([c[3] for c in pool]), device=dev)
    M, _, _, _, _, _, _ = icp_batch(
        src, tt, init, scale=False, iterations=15, gate_mm=max(translation_range_mm / 2, 5.0)
    )
    p = src @ M[:, :3, :3].transpose(1, 2) + M[:, None, :3, 3]
    d = torch.linalg.norm(p - tt.gather(tt.lookup(p))[0], dim=-1)
    close = d <= accept_mm / 2
    frac = close.double().mean(-1)
    rms = torch.sqrt((torch.where(close, d, torch.zeros_like(d)) ** 2).sum(-1) / close.sum(-1).clamp_min(1))
    k = int(torch.argmax(frac - 1e-3 * rms))
    return float(frac[k]), float(rms[k]), M[k].cpu().numpy()


def rotation_error_deg(a: np.ndarray, b: np.ndarray) -> float:
    ra = a[:3, :3] / np.cbrt(np.linalg.det(a[:3, :3]))
    rb = b[:3, :3] / np.cbrt(np.linalg.det(b[:3, :3]))
    c = (np.trace(ra @ rb.T) - 1) / 2
    return math.degrees(math.acos(float(np.clip(c, -1, 1))))


@dataclass
class PoseInputs:
    """What an initialiser may use besides the cloud and the target (each uses only its own fields)."""

    current: np.ndarray | None = None  # camera-to-CT pose now (identity when None)
    tracker_to_ras: np.ndarray | None = None
    camera_to_tracker: np.ndarray | None = None
    landmarks_cloud: np.ndarray | None = None  # camera frame, mm
    landmarks_ct: np.ndarray | None = None  # RAS, mm
    scale: bool = False
    budget_s: float = 1.0
    search_deg: float | None = 35.0
    search_mm: float = 25.0
    seed: int = 0
    device: str | None = "cpu"
    cancel: CancelToken | None = None  # checked between the global search's batches


class PoseInitialiser(Protocol):
    def __call__(self, cloud: np.ndarray, target: RegistrationTarget, inputs: PoseInputs) -> np.ndarray: ...


def _from_current(cloud, target, inputs: PoseInputs) -> np.ndarray:
    return np.eye(4) if inputs.current is None else _matrix(inputs.current, "current pose")


def _from_tracking(cloud, target, inputs: PoseInputs) -> np.ndarray:
    if inputs.tracker_to_ras is None:
        raise InputError("Initialisation from tracking needs a tracking transform.")
    return init_from_tracking(inputs.tracker_to_ras, inputs.camera_to_tracker)


def _from_landmarks(cloud, target, inputs: PoseInputs) -> np.ndarray:
    if inputs.landmarks_cloud is None or inputs.landmarks_ct is None:
        raise InputError("Initialisation from landmarks needs points on the video/cloud and on the CT.")
    return landmark_transform(inputs.landmarks_cloud, inputs.landmarks_ct, scale=inputs.scale)


def _global(cloud, target, inputs: PoseInputs, prior) -> np.ndarray:
    return global_init(
        cloud,
        target,
        prior=prior,
        budget_s=inputs.budget_s,
        scale=inputs.scale,
        rotation_range_deg=inputs.search_deg,
        translation_range_mm=inputs.search_mm,
        seed=inputs.seed,
        device=inputs.device,
        cancel=inputs.cancel,
    ).matrix


def _global_around_current(cloud, target, inputs: PoseInputs) -> np.ndarray:
    return _global(cloud, target, inputs, inputs.current)


def _global_full(cloud, target, inputs: PoseInputs) -> np.ndarray:
    return _global(cloud, target, inputs, None)


# The one list of start poses: the panel's choices, the CLI's --init and the tracker's relocalisation.
INITIALISERS: dict[str, PoseInitialiser] = {
    "current": _from_current,
    "tracking": _from_tracking,
    "landmarks": _from_landmarks,
    "global": _global_around_current,
    "global-full": _global_full,
}
def initial_pose(cloud: np.ndarray, target: RegistrationTarget, method: str, inputs: PoseInputs) -> np.ndarray:
    """Starting camera-to-CT pose by ``method`` (a key of :data:`INITIALISERS`)."""
    initialiser = INITIALISERS.get(method)
    if initialiser is None:
        raise InputError(f"Unknown initialisation '{method}': use {', '.join(INITIALISERS)}.")
    return initialiser(cloud, target, inputs)
