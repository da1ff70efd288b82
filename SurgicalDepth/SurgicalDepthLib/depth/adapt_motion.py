"""Camera motion between video frames for self-supervised depth adaptation.

For each frame ``i`` a partner ``j > i`` is chosen far enough ahead for a usable baseline; Lucas-Kanade
tracks of corners inside the field of view give the essential matrix (OpenCV, RANSAC), ``recoverPose`` the
rotation and translation direction, ``triangulatePoints`` the sparse points, and a two-view bundle
adjustment (``scipy.optimize.least_squares``, robust Huber loss) refines the pose
together with one depth per point along its ray in frame ``i``. Translation, and so the point depths,
are known only up to scale: each pair has ``|t| = 1``; the adaptation loop fits the scale to the
network's own depth.

Poses follow OpenCV: ``X_j = R X_i + t`` with X in camera coordinates (x right, y down, z forward).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from SurgicalAICore.errors import InputError

from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics


@dataclass
class PairMotion:
    """Relative motion from frame ``i`` to frame ``j`` and the sparse points seen in ``i``."""

    i: int
    j: int
    R: np.ndarray  # 3x3, X_j = R X_i + t
    t: np.ndarray  # 3, unit length
    uv: np.ndarray  # (N, 2) pixels of the points in frame i (motion camera)
    depth: np.ndarray  # (N,) z in frame i, in units of |t|
    inliers: int
    parallax_px: float  # median feature displacement
    rms_px: float  # reprojection error after bundle adjustment


@dataclass
class ClipMotion:
    camera: CameraIntrinsics  # the camera the uv coordinates refer to
    pairs: list[PairMotion] = field(default_factory=list)
    frames: int = 0
    median_flow_px: float = 0.0
    registered: list[int] = field(default_factory=list)

    def pairs_for(self, i: int) -> list[PairMotion]:
        return [p for p in self.pairs if p.i == i]


@dataclass
class MotionConfig:
    width: int = 640  # frames are resized to this width for feature matching
    features: int = 1500
    min_parallax_px: float = 12.0  # wanted median displacement between a frame and its partner (640 px wide)
    max_gap: int = 8
    min_inliers: int = 40
    min_points: int = 25
    ba_points: int = 120
    min_registered: float = 0.5  # fraction of frames that must get a partner
    min_flow_px: float = 1.0  # below this median displacement between frames (640 px wide): no motion


def _grey(rgb: np.ndarray, width: int) -> tuple[np.ndarray, float]:
    import cv2

    scale = width / rgb.shape[1]
    size = (width, round(rgb.shape[0] * scale))
    grey = cv2.cvtColor(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    # endoscopic tissue is low in contrast; local equalisation gives the tracker far more corners
    return cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(grey), scale


def _corners(grey: np.ndarray, mask: np.ndarray, count: int) -> np.ndarray:
    import cv2

    # a low quality level: sinus mucosa has few strong corners, and the tracker's checks weed out bad ones
    pts = cv2.goodFeaturesToTrack(grey, count, 0.003, 6, mask=mask)
    return np.zeros((0, 2), np.float32) if pts is None else pts.reshape(-1, 2).astype(np.float32)


def track(grey_a: np.ndarray, grey_b: np.ndarray, pts: np.ndarray, fb_px: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Pyramidal Lucas-Kanade from a to b with a forward-backward check: matched (pts_a, pts_b)."""
    import cv2

    if len(pts) == 0:
        return pts, pts
    lk = {"winSize": (21, 21), "maxLevel": 3}
    fwd, st1, _ = cv2.calcOpticalFlowPyrLK(grey_a, grey_b, pts.reshape(-1, 1, 2), None, **lk)
    back, st2, _ = cv2.calcOpticalFlowPyrLK(grey_b, grey_a, fwd, None, **lk)
    ok = (
        (st1.ravel() == 1)
        & (st2.ravel() == 1)
        & (np.linalg.norm((back - pts.reshape(-1, 1, 2)).reshape(-1, 2), axis=1) < fb_px)
    )
    return pts[ok], fwd.reshape(-1, 2)[ok]


def _rodrigues(rvec: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.Rodrigues(np.asarray(rvec, np.float64).reshape(3, 1))[0]


def _ba_project(params, R0, rays, K):
    """Points of frame i moved into frame j: rotation exp(delta) R0 (delta = params[:3]), t = params[3:6],
    depths exp(params[6:]) along ``rays``."""
    n = len(rays)
    R = _rodrigues(params[:3]) @ R0
    X = rays * np.exp(np.clip(params[6 : 6 + n], -20, 20))[:, None]
    RX = X @ R.T
    return RX, RX + params[3:6]


def _ba_residuals(params, R0, rays, obs_j, K):
    _, Y = _ba_project(params, R0, rays, K)
    z = np.clip(Y[:, 2:3], 1e-6, None)
    uv = Y[:, :2] / z * [K[0, 0], K[1, 1]] + [K[0, 2], K[1, 2]]
    # the scale gauge: the translation is kept at unit length by a stiff extra residual
    return np.concatenate([(uv - obs_j).ravel(), [100.0 * (np.linalg.norm(params[3:6]) - 1.0)]])


def _ba_jacobian(params, R0, rays, obs_j, K):
    """Analytic Jacobian (the rotation part is exact at delta = 0, where each solve starts; finite
    differences cost one residual evaluation per parameter)."""
    n = len(rays)
    RX, Y = _ba_project(params, R0, rays, K)
    z = np.clip(Y[:, 2], 1e-6, None)
    fx, fy = K[0, 0], K[1, 1]
    d_uv = np.zeros((n, 2, 3))
    d_uv[:, 0, 0] = fx / z
    d_uv[:, 0, 2] = -fx * Y[:, 0] / z**2
    d_uv[:, 1, 1] = fy / z
    d_uv[:, 1, 2] = -fy * Y[:, 1] / z**2
    skew = np.zeros((n, 3, 3))  # d(exp(delta) RX)/d delta = -[RX]x
    skew[:, 0, 1], skew[:, 0, 2] = RX[:, 2], -RX[:, 1]
    skew[:, 1, 0], skew[:, 1, 2] = -RX[:, 2], RX[:, 0]
    skew[:, 2, 0], skew[:, 2, 1] = RX[:, 1], -RX[:, 0]
    J = np.zeros((2 * n + 1, 6 + n))
    J[: 2 * n, :3] = (d_uv @ skew).reshape(2 * n, 3)
    J[: 2 * n, 3:6] = d_uv.reshape(2 * n, 3)
    rows = np.arange(n)
    dz = np.einsum("nij,nj->ni", d_uv, RX)
    J[2 * rows, 6 + rows] = dz[:, 0]
    J[2 * rows + 1, 6 + rows] = dz[:, 1]
    t = params[3:6]
    J[2 * n, 3:6] = 100.0 * t / max(np.linalg.norm(t), 1e-12)
    return J


def two_view_bundle_adjust(R, t, uv_i, uv_j, depth, K) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Refine (R, t, depths along the rays of frame i) by minimising the reprojection error in frame j.

    Returns R, unit t, depths (in units of |t|) and the (N, 2) residuals in pixels."""
    from scipy.optimize import least_squares

    n = len(uv_i)
    rays = np.column_stack([(uv_i[:, 0] - K[0, 2]) / K[0, 0], (uv_i[:, 1] - K[1, 2]) / K[1, 1], np.ones(n)])
    R0 = np.asarray(R, np.float64)
    x0 = np.concatenate([np.zeros(3), t / np.linalg.norm(t), np.log(np.clip(depth, 1e-6, None))])
    res = least_squares(
        _ba_residuals, x0, jac=_ba_jacobian, loss="huber", f_scale=1.0, max_nfev=50, args=(R0, rays, uv_j, K)
    )
    R_ba = _rodrigues(res.x[:3]) @ R0
    scale = np.linalg.norm(res.x[3:6])
    z = np.exp(np.clip(res.x[6:], -20, 20)) / scale
    return R_ba, res.x[3:6] / scale, z, res.fun[: 2 * n].reshape(n, 2)


def _triangulate(a, b, R, t, K) -> tuple[np.ndarray, np.ndarray]:
    """Depth in frame i of each match and its reprojection error (px) in frame j."""
    import cv2

    P0 = K @ np.hstack([np.eye(3), np.zeros((3, 1))])
    P1 = K @ np.hstack([R, np.reshape(t, (3, 1))])
    X = cv2.triangulatePoints(P0, P1, a.T, b.T)
    X = (X[:3] / X[3]).T
    Y = X @ R.T + np.ravel(t)
    proj = Y[:, :2] / np.where(np.abs(Y[:, 2:3]) < 1e-9, 1e-9, Y[:, 2:3]) * [K[0, 0], K[1, 1]] + [K[0, 2], K[1, 2]]
    err = proj - b
    err[(X[:, 2] <= 0) | (Y[:, 2] <= 0)] = np.inf
    return X[:, 2], err


def estimate_pair(a: np.ndarray, b: np.ndarray, K: np.ndarray, cfg: MotionConfig) -> PairMotion | None:
    """Relative motion i -> j from matched pixels a (in i) and b (in j), or None when the pair gives no
    reliable geometry."""
    import cv2

    if len(a) < cfg.min_inliers:
        return None
    a, b = a.astype(np.float64), b.astype(np.float64)
    parallax = float(np.median(np.linalg.norm(a - b, axis=1)))
    E, inl = cv2.findEssentialMat(a, b, K, method=cv2.RANSAC, prob=0.999, threshold=1.0)
    if E is None or E.shape != (3, 3) or inl is None or int(inl.sum()) < cfg.min_inliers:
        return None
    count, R, t, inl = cv2.recoverPose(E, a, b, K, mask=inl.copy())
    keep = inl.ravel() > 0
    if count < cfg.min_inliers:
        return None
    a, b = a[keep], b[keep]
    P0 = K @ np.hstack([np.eye(3), np.zeros((3, 1))])
    P1 = K @ np.hstack([R, t.reshape(3, 1)])
    X = cv2.triangulatePoints(P0, P1, a.T, b.T)
    X = (X[:3] / X[3]).T
    z_i = X[:, 2]
    z_j = (X @ R.T + t.ravel())[:, 2]
    front = (z_i > 0) & (z_j > 0) & np.isfinite(z_i)
    if front.sum() < cfg.min_points:
        return None
    a, b, z_i = a[front], b[front], z_i[front]
    # bundle adjustment time grows with the points; a hundred or so fix the pose, and every point is then
    # triangulated again with the refined pose
    pick = np.random.default_rng(len(a)).choice(len(a), min(len(a), cfg.ba_points), replace=False)
    R, t, _, _ = two_view_bundle_adjust(R, t.ravel(), a[pick], b[pick], z_i[pick], K)
    z, err = _triangulate(a, b, R, t, K)
    ok = np.linalg.norm(err, axis=1) < 2.0
    ok &= (z > 0) & (z < 50 * np.median(z))
    if ok.sum() < cfg.min_points:
        return None
    rms = float(np.sqrt(np.mean(np.sum(err[ok] ** 2, axis=1))))
    return PairMotion(-1, -1, R, t, a[ok].astype(np.float32), z[ok].astype(np.float32), int(ok.sum()), parallax, rms)


def estimate_clip_motion(
    frames: Sequence[np.ndarray],
    camera: CameraIntrinsics,
    mask: np.ndarray,
    cfg: MotionConfig | None = None,
    progress: Callable[[float, str], None] | None = None,
    cancel=None,
) -> ClipMotion:
    """Pairwise motion for a clip of same-size RGB frames with intrinsics ``camera`` (for their size).

    Raises InputError when the clip shows too little motion or too few frames get a reliable partner.
    """
    import cv2

    cfg = cfg or MotionConfig()
    n = len(frames)
    width = min(cfg.width, frames[0].shape[1])
    greys, corners = [], []
    for k, rgb in enumerate(frames):
        if cancel is not None:
            cancel.raise_if_cancelled()
        grey, _scale = _grey(rgb, width)
        if k == 0:
            small_mask = cv2.resize(mask.astype(np.uint8), grey.shape[::-1], interpolation=cv2.INTER_NEAREST)
            small_mask = cv2.erode(small_mask, np.ones((9, 9), np.uint8))
        greys.append(grey)
        corners.append(_corners(grey, small_mask, cfg.features))
        if progress:
            progress(0.2 * (k + 1) / n, f"features {k + 1}/{n}")
    cam = camera.scaled(width, greys[0].shape[0])
    K = cam.K
    flows = []
    for k in range(0, n - 1, max(1, (n - 1) // 40)):
        a, b = track(greys[k], greys[k + 1], corners[k])
        flows.append(float(np.median(np.linalg.norm(a - b, axis=1))) if len(a) >= 8 else 0.0)
    median_flow = float(np.median(flows)) if flows else 0.0
    if median_flow < cfg.min_flow_px * width / 640:
        raise InputError(
            f"The clip shows too little camera motion (median {median_flow:.2f} px between frames): "
            "adaptation needs a moving endoscope."
        )
    wanted = cfg.min_parallax_px * width / 640
    gap = int(np.clip(math.ceil(wanted / max(median_flow, 1e-3)), 1, cfg.max_gap))
    motion = ClipMotion(cam, [], n, median_flow)
    registered = set()
    for i in range(n):
        if cancel is not None:
            cancel.raise_if_cancelled()
        # a partner on each side: the photometric loss takes the better of the two at every pixel,
        # which is how Monodepth2 handles occlusions and pixels leaving the view
        for side in (1, -1):
            for g in (gap, max(1, gap // 2)):
                j = i + side * g
                if not 0 <= j < n:
                    continue
                pair = estimate_pair(*track(greys[i], greys[j], corners[i]), K, cfg)
                if pair is not None:
                    pair.i, pair.j = i, j
                    motion.pairs.append(pair)
                    registered.add(i)
                    break
        if progress:
            progress(0.2 + 0.8 * (i + 1) / n, f"motion {i + 1}/{n}, {len(registered)} registered")
    motion.registered = sorted(registered)
    if len(registered) < cfg.min_registered * n:
        raise InputError(
            f"Motion estimation registered only {len(registered)} of {n} frames; the clip is too "
            "blurred, too dark or too textureless for self-supervised adaptation."
        )
    return motion


def rescale_pair_uv(uv: np.ndarray, src: CameraIntrinsics, dst: CameraIntrinsics) -> np.ndarray:
    """Pixel coordinates of the same rays in a camera resized from ``src`` to ``dst``."""
    sx, sy = dst.width / src.width, dst.height / src.height
    return np.column_stack([(uv[:, 0] + 0.5) * sx - 0.5, (uv[:, 1] + 0.5) * sy - 0.5]).astype(np.float32)
