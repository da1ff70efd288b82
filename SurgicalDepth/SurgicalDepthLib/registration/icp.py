"""Robust point-to-plane ICP (rigid or similarity), vectorised in torch (CPU or GPU).

Each iteration: closest target samples (grid lookup, then exact k-d tree for the last iterations),
point-to-plane residuals, an adaptive correspondence gate (keeps partial overlap out) and Tukey
weights on the residuals (keeps outliers out), one Gauss-Newton step of the linearised
rotation / translation / log-scale, composed into the 4x4 source-to-target matrix.
"""
from __future__ import annotations

import contextlib
import math
import threading
from dataclasses import dataclass

import numpy as np
import torch

from SurgicalAICore.errors import InputError
from SurgicalAICore.validation import check_coordinates

from SurgicalDepthLib.registration.target import RegistrationTarget

TUKEY_C = 4.685


@dataclass
class ICPResult:
    """Source-to-target 4x4 (``scale`` times a rotation, plus translation) and fit statistics."""

    matrix: np.ndarray
    scale: float
    rms_mm: float            # RMS point-to-plane residual of the inliers
    inlier_fraction: float   # share of source points kept by the gate with non-zero weight
    iterations: int
    converged: bool
    well_constrained: bool   # False when the surface lets the cloud slide (flat / cylindrical patch)
    n_points: int
    conditioning: float = 1.0  # min/max eigenvalue ratio of the normalised point-to-plane system


def check_cloud(points: np.ndarray, min_points: int = 10, what: str = "point cloud") -> np.ndarray:
    """Finite (N, 3) float64 copy; empty, too small, collinear or planar clouds are an InputError."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise InputError(f"The {what} must be an (N, 3) array of points, got shape {pts.shape}.")
    pts = check_coordinates(pts[np.all(np.isfinite(pts), axis=1)], what)
    if len(pts) == 0:
        raise InputError(f"The {what} is empty (no finite points): check the depth map and its mask.")
    if len(pts) < min_points:
        raise InputError(f"The {what} has only {len(pts)} points; at least {min_points} are needed.")
    sub = pts[:: max(1, len(pts) // 5000)]
    centred = sub - sub.mean(axis=0)
    # singular values from the 3x3 scatter matrix: cheap for any cloud size
    sv = np.sqrt(np.clip(np.linalg.eigvalsh(centred.T @ centred), 0, None))[::-1]
    if sv[0] <= 1e-9:
        raise InputError(f"All points of the {what} coincide; it cannot be registered.")
    if sv[1] / sv[0] < 1e-3:
        raise InputError(f"The {what} is degenerate (collinear points); it cannot be registered.")
    if sv[2] / sv[0] < 1e-3:
        raise InputError(f"The {what} is degenerate (planar: all points lie in one plane); "
                         "a flat patch cannot fix the pose against the CT surface.")
    return pts


def rotation_matrix(rotvec: torch.Tensor) -> torch.Tensor:
    """Rodrigues: (..., 3) rotation vectors to (..., 3, 3) matrices."""
    theta = torch.linalg.norm(rotvec, dim=-1, keepdim=True).clamp_min(1e-15)
    k = rotvec / theta
    kx, ky, kz = k[..., 0], k[..., 1], k[..., 2]
    zero = torch.zeros_like(kx)
    K = torch.stack([zero, -kz, ky, kz, zero, -kx, -ky, kx, zero], dim=-1).reshape((*rotvec.shape[:-1], 3, 3))
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device).expand_as(K)
    s = torch.sin(theta)[..., None]
    c = torch.cos(theta)[..., None]
    return eye + s * K + (1 - c) * (K @ K)


class TargetTensors:
    """The target's samples, normals and lookup grid as tensors on one device (cache per device)."""

    def __init__(self, target: RegistrationTarget, device: torch.device):
        self.target = target
        self.device = device
        self.points = torch.as_tensor(target.points, dtype=torch.float64, device=device)
        self.normals = torch.as_tensor(target.normals, dtype=torch.float64, device=device)
        self.points_normals = torch.cat([self.points, self.normals], dim=1).contiguous()
        g = target.grid
        self.origin = torch.as_tensor(g.origin, dtype=torch.float64, device=device)
        self.spacing = float(g.spacing)
        self.shape = g.shape
        self.table = torch.as_tensor(g.sample_index.astype(np.int64), device=device)
        self.hi = torch.as_tensor([s - 1 for s in g.shape], device=device)

    @staticmethod
    def of(target: RegistrationTarget, device: torch.device) -> TargetTensors:
        cache = target.__dict__.setdefault("_tensors", {})
        key = str(device)
        if key not in cache:
            cache[key] = TargetTensors(target, device)
        return cache[key]

    def lookup(self, pts: torch.Tensor) -> torch.Tensor:
        ijk = torch.floor((pts - self.origin) / self.spacing).long()
        ijk = torch.minimum(ijk.clamp_min(0), self.hi)
        nx, ny = self.shape[0], self.shape[1]
        flat = ijk[..., 0] + nx * (ijk[..., 1] + ny * ijk[..., 2])
        # index_select is several times faster than advanced indexing on the CPU
        return torch.index_select(self.table, 0, flat.reshape(-1)).reshape(flat.shape)

    def gather(self, idx: torch.Tensor):
        """(points, normals) of the samples ``idx`` (any shape)."""
        pn = torch.index_select(self.points_normals, 0, idx.reshape(-1)).reshape((*idx.shape, 6))
        return pn[..., :3], pn[..., 3:]

    def exact(self, pts: torch.Tensor, within_mm: float) -> torch.Tensor:
        """Exact nearest samples for points closer than ``within_mm``; the grid's answer elsewhere
        (bounding the search keeps far outliers from making the k-d tree slow)."""
        idx = self.lookup(pts)
        flat_pts = pts.detach().cpu().numpy().reshape(-1, 3)
        _, near = self.target.kdtree.query(flat_pts, distance_upper_bound=within_mm, workers=-1)
        near = torch.as_tensor(near, device=self.device).reshape(pts.shape[:-1])
        return torch.where(near < len(self.target.points), near, idx)


def _gate_and_weights(dist: torch.Tensor, res: torch.Tensor, gate: torch.Tensor, floor: float):
    """Weights (..., N) and the next gate (...,) from point distances and plane residuals."""
    inside = dist <= gate[..., None]
    count = inside.sum(-1).clamp_min(1)
    # residual scale from the gated pairs: robust (median) so outliers inside the gate do not inflate it
    # the median over an evenly strided subset is as good a scale estimate and much cheaper to sort
    step = max(1, res.shape[-1] // 2048)
    sub_inside = inside[..., ::step]
    sub_count = sub_inside.sum(-1).clamp_min(1)
    absres = torch.where(sub_inside, res[..., ::step].abs(), torch.full_like(res[..., ::step], float("inf")))
    med = torch.sort(absres, dim=-1).values.gather(-1, ((sub_count - 1) // 2)[..., None]).squeeze(-1)
    sigma = (1.4826 * med).clamp_min(1e-6)
    c = TUKEY_C * sigma
    u = (res / c[..., None]).clamp(-1, 1)
    w = torch.where(inside, (1 - u * u) ** 2, torch.zeros_like(res))
    w = torch.where(res.abs() < c[..., None], w, torch.zeros_like(w))
    d_in = torch.where(inside, dist, torch.zeros_like(dist))
    rms_d = torch.sqrt((d_in * d_in).sum(-1) / count)
    # the gate also anneals, so a cloud with more foreign than matching points is still pulled in
    next_gate = torch.maximum(torch.minimum(0.75 * gate, 3.0 * rms_d + 3.0 * sigma), torch.full_like(gate, floor))
    return w, next_gate


MAX_LOG_SCALE_STEP = 0.1            # per iteration
MAX_LOG_SCALE = math.log(1.5)       # overall, relative to the initial pose


def _gauss_newton(M, p, n, res, w, scale, eye, damping, log_scale=None):
    """One weighted point-to-plane Gauss-Newton step; returns (new M, step size mm, conditioning).

    ``log_scale`` (B,) is the scale change so far; steps are clamped so it stays within
    ±MAX_LOG_SCALE: with poor correspondences a free scale would otherwise shrink the cloud to a
    point, which fits any surface."""
    B = M.shape[0]
    dt = M.dtype
    wsum = w.sum(-1, keepdim=True).clamp_min(1e-12)
    c = (w[..., None] * p).sum(1) / wsum
    x = p - c[:, None, :]
    rho = torch.sqrt((w * (x * x).sum(-1)).sum(-1) / wsum.squeeze(-1)).clamp_min(1e-6)
    xs = x / rho[:, None, None]  # unit-radius lever arms keep the normal equations balanced
    x0, x1, x2 = xs.unbind(-1)
    n0, n1, n2 = n.unbind(-1)
    # written out: torch.cross is slow on the CPU for (B, N, 3)
    cols = [torch.stack([x1 * n2 - x2 * n1, x2 * n0 - x0 * n2, x0 * n1 - x1 * n0], dim=-1), n]
    if scale:
        cols.append((xs * n).sum(-1, keepdim=True))
    J = torch.cat(cols, dim=-1)
    Jw = J * w[..., None]
    A = Jw.transpose(1, 2) @ J
    b = -(Jw * res[..., None]).sum(1)
    d = torch.sqrt(torch.diagonal(A, dim1=1, dim2=2).clamp_min(1e-12))
    An = A / (d[:, :, None] * d[:, None, :]) + damping * eye
    ev = torch.linalg.eigvalsh(An)
    cond = ev[:, 0] / ev[:, -1].clamp_min(1e-30)
    delta = torch.linalg.solve(An, (b / d)[..., None]).squeeze(-1) / d
    # unknowns: rotation vector scaled by 1/rho (lever arms in rho units), translation, log-scale
    rot = delta[:, :3] / rho[:, None]
    trans = delta[:, 3:6]
    if scale:
        ds = (delta[:, 6] / rho).clamp(-MAX_LOG_SCALE_STEP, MAX_LOG_SCALE_STEP)
        ds = torch.minimum(torch.maximum(ds, -MAX_LOG_SCALE - log_scale), MAX_LOG_SCALE - log_scale)
        log_scale += ds
        s = torch.exp(ds)
    else:
        s = torch.ones(B, dtype=dt, device=M.device)
    R = rotation_matrix(rot)
    inc = torch.eye(4, dtype=dt, device=M.device).repeat(B, 1, 1)
    inc[:, :3, :3] = s[:, None, None] * R
    inc[:, :3, 3] = c + trans - (s[:, None, None] * R @ c[..., None]).squeeze(-1)
    step = torch.linalg.norm(rot, dim=-1) * rho + torch.linalg.norm(trans, dim=-1) + (s - 1).abs() * rho
    return inc @ M, step, cond


_THREADS_LOCK = threading.Lock()
_threads_users = [0, 0]  # [callers inside cpu_threads, torch's thread count before the first of them]


@contextlib.contextmanager
def cpu_threads(device: torch.device, n: int = 1):
    """Run small-tensor work single-threaded on the CPU: at 10^4 points thread hand-off costs more
    than it saves, and on a busy machine OpenMP waits make it many times slower. Counted, so that a tracker's
    background search and the frame path overlapping restore the caller's thread count, not each other's."""
    if device.type != "cpu":
        yield
        return
    with _THREADS_LOCK:
        if _threads_users[0] == 0:
            _threads_users[1] = torch.get_num_threads()
            torch.set_num_threads(n)
        _threads_users[0] += 1
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _threads_users[0] -= 1
            if _threads_users[0] == 0:
                torch.set_num_threads(_threads_users[1])


def icp_batch(source: torch.Tensor, tt: TargetTensors, init: torch.Tensor, *, scale: bool = False,
              iterations: int = 30, gate_mm: float = 20.0, exact_last: int = 0,
              tol: float = 1e-6, damping: float = 1e-9):
    """Run ICP for B initial poses at once.

    source (N, 3) or (B, N, 3); init (B, 4, 4). Returns (matrices (B, 4, 4), weights (B, N),
    residuals (B, N), iterations run, converged (B,), min/max eigenvalue ratio (B,)).
    """
    dt = torch.float64
    B = init.shape[0]
    src = source.expand(B, -1, -1) if source.dim() == 2 else source
    M = init.clone()
    floor = 2.0 * tt.spacing + 2.0 * tt.target.sample_spacing
    exact_floor = 3.0 * tt.target.sample_spacing
    gate = torch.full((B,), float(gate_mm), dtype=dt, device=src.device)
    ndof = 7 if scale else 6
    eye = torch.eye(ndof, dtype=dt, device=src.device)
    converged = torch.zeros(B, dtype=torch.bool, device=src.device)
    cond = torch.ones(B, dtype=dt, device=src.device)
    log_scale = torch.zeros(B, dtype=dt, device=src.device)
    it = 0
    w = res = None
    phases = [(False, max(iterations - exact_last, 1)), (True, exact_last)]
    for exact, count in phases:
        for _ in range(count):
            it += 1
            p = src @ M[:, :3, :3].transpose(1, 2) + M[:, None, :3, 3]
            idx = tt.exact(p, float(gate.max())) if exact else tt.lookup(p)
            q, n = tt.gather(idx)
            diff = p - q
            dist = torch.linalg.norm(diff, dim=-1)
            res = (diff * n).sum(-1)
            w, gate = _gate_and_weights(dist, res, gate, exact_floor if exact else floor)
            M, step, cond = _gauss_newton(M, p, n, res, w, scale, eye, damping, log_scale)
            converged = step < tol
            if bool(converged.all()):
                break
    return M, w, res, it, converged, cond, gate


def icp(source_points: np.ndarray, target: RegistrationTarget, init: np.ndarray | None = None, *,
        scale: bool = False, max_iterations: int = 40, gate_mm: float = 20.0, exact_final: int = 3,
        tolerance_mm: float = 1e-5, device: str | None = "cpu", max_points: int = 0,
        seed: int = 0) -> ICPResult:
    """Register ``source_points`` (N, 3) onto ``target`` starting from ``init`` (4x4 source-to-target).

    ``gate_mm`` is the largest point-to-surface distance accepted at the start (the gate then
    shrinks towards the noise level); ``exact_final`` last iterations use the exact k-d tree;
    ``max_points`` > 0 randomly subsamples larger clouds first.
    """
    from SurgicalAICore.device import select_device

    pts = check_cloud(source_points)
    if max_points and len(pts) > max_points:
        pts = pts[np.random.default_rng(seed).choice(len(pts), max_points, replace=False)]
    init = np.eye(4) if init is None else np.asarray(init, dtype=np.float64)
    if init.shape != (4, 4) or not np.all(np.isfinite(init)):
        raise InputError("The initial pose must be a finite 4x4 matrix.")
    dev = select_device(device)
    tt = TargetTensors.of(target, dev)
    src = torch.as_tensor(pts, dtype=torch.float64, device=dev)
    with cpu_threads(dev):
        M, _w, _res, it, conv, cond, gate = icp_batch(src, tt, torch.as_tensor(init, device=dev)[None], scale=scale,
                                                    iterations=max_iterations, gate_mm=gate_mm,
                                                    exact_last=exact_final, tol=tolerance_mm)
        m = M[0].cpu().numpy()
        # fit statistics at the final pose: inliers are the points the final gate accepts
        p = src @ M[0, :3, :3].T + M[0, :3, 3]
        idx = tt.exact(p[None], float(gate[0]))[0] if exact_final else tt.lookup(p)
        q, n = tt.gather(idx)
        diff = p - q
        inl = torch.linalg.norm(diff, dim=-1) <= gate[0]
        r0 = (diff * n).sum(-1)
        n_in = int(inl.sum())
        rms = float(torch.sqrt((r0[inl] ** 2).mean())) if n_in else float("inf")
        s = float(np.cbrt(abs(np.linalg.det(m[:3, :3]))))
    return ICPResult(matrix=m, scale=s, rms_mm=rms, inlier_fraction=n_in / len(pts), iterations=int(it),
                     converged=bool(conv[0]), well_constrained=bool(cond[0] > 1e-4), n_points=len(pts),
                     conditioning=float(cond[0]))


def rotation_angle_deg(R: np.ndarray) -> float:
    c = (np.trace(np.asarray(R)[:3, :3]) - 1.0) / 2.0
    return math.degrees(math.acos(float(np.clip(c, -1.0, 1.0))))


def pose_error(estimate: np.ndarray, truth: np.ndarray):
    """(rotation error deg, translation error mm, scale ratio) between two similarity 4x4s."""
    e, t = np.asarray(estimate, float), np.asarray(truth, float)
    se, st = np.cbrt(np.linalg.det(e[:3, :3])), np.cbrt(np.linalg.det(t[:3, :3]))
    R = (e[:3, :3] / se) @ (t[:3, :3] / st).T
    return rotation_angle_deg(R), float(np.linalg.norm(e[:3, 3] - t[:3, 3])), float(se / st)
