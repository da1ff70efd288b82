"""Truncated signed-distance (TSDF) fusion of registered depth frames into one surface, numpy only.

Where :func:`~SurgicalDepthLib.registration.fusion.fuse_clouds` averages the points that fall in one cell, a
TSDF averages, per voxel, the signed distance to each frame's surface *along that frame's viewing ray*
(Curless & Levoy 1996; KinectFusion). Frames whose depth disagrees by a few millimetres then meet half-way in
one surface instead of lying side by side as two, which is what monocular depth needs: its errors are smooth
and differ from frame to frame (``docs/BENCHMARKS_fusion.md``: registering the network's depth fused this way
took the laparoscopy error from 27 mm to 8 mm where cell means did not help).

Inputs are either depth maps with their pinhole camera or camera-frame clouds (what the tracking session keeps
per frame); a cloud is first drawn into a depth image over its own viewing angles (:func:`cloud_depth_image`),
so no camera needs to be known. The surface is read back as the zero crossings between neighbouring voxels that
both saw the surface (the points Open3D's ``extract_point_cloud`` returns), with normals from the field.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from SurgicalAICore.errors import InputError

MAX_VOXELS = 12_000_000  # ~150 MB of float32 fields; larger volumes get coarser voxels, never an allocation error


@dataclass
class DepthView:
    """One frame for integration: depth along the optical axis (mm, 0 = no depth) on a pinhole grid."""
    depth: np.ndarray          # (H, W)
    fx: float
    fy: float
    cx: float
    cy: float
    pose: np.ndarray           # camera -> world 4x4 (rigid, or with one uniform scale)


@dataclass
class TsdfSurface:
    points: np.ndarray         # (M, 3) world mm, the zero crossings
    normals: np.ndarray        # (M, 3) unit, pointing out of the surface (towards the cameras)
    weights: np.ndarray        # (M,) frames that saw the surface there (the lesser of the two voxels)
    voxel_mm: float
    trunc_mm: float
    n_frames: int


def cloud_depth_image(points: np.ndarray) -> tuple[np.ndarray, float, float, float, float]:
    """A depth image of a camera-frame cloud over its own viewing angles: (depth, fx, fy, cx, cy).

    The grid has two pixels per point, so each filled pixel holds about one point at nearly its own viewing
    angle (coarser pixels, or the nearest of several points, bias the surface: on the test organ the fused
    surface lay 0.70 mm from the truth with the nearest of two points per pixel, 0.28 mm with this grid and
    0.24 mm for cell means under 0.3 mm noise); points sharing a pixel are averaged and a pixel left empty
    between filled ones takes the mean of its filled neighbours."""
    from scipy.ndimage import convolve

    pts = np.asarray(points, float)
    pts = pts[pts[:, 2] > 0]
    if len(pts) < 3:
        raise InputError("A frame has fewer than 3 points in front of the camera: it cannot be fused.")
    a, b = pts[:, 0] / pts[:, 2], pts[:, 1] / pts[:, 2]
    a0, a1, b0, b1 = a.min(), a.max(), b.min(), b.max()
    area = max((a1 - a0) * (b1 - b0), 1e-12)
    f = 1.0 / np.sqrt(area / (2.0 * len(pts)))  # pixels per unit of tangent-plane angle
    width = int(np.ceil((a1 - a0) * f)) + 1
    height = int(np.ceil((b1 - b0) * f)) + 1
    cx, cy = -a0 * f, -b0 * f
    u = np.clip(np.round(a * f + cx).astype(int), 0, width - 1)
    v = np.clip(np.round(b * f + cy).astype(int), 0, height - 1)
    pixel = v * width + u
    count = np.bincount(pixel, minlength=height * width)
    depth = np.bincount(pixel, pts[:, 2], minlength=height * width) / np.maximum(count, 1)
    depth = depth.reshape(height, width)
    filled = (depth > 0).astype(float)
    kernel = np.ones((3, 3))
    count = convolve(filled, kernel, mode="constant")
    total = convolve(depth, kernel, mode="constant")
    hole = (depth == 0) & (count >= 4)  # surrounded, not at the edge of the field of view
    depth[hole] = total[hole] / count[hole]
    return depth, f, f, cx, cy


def _check_pose(pose: np.ndarray, i: int) -> np.ndarray:
    from SurgicalDepthLib.registration.motion import check_rigid

    m = np.asarray(pose, float)
    if m.shape != (4, 4) or not np.all(np.isfinite(m)):
        raise InputError(f"The pose of frame {i} must be a finite 4x4 matrix.")
    s = np.cbrt(np.linalg.det(m[:3, :3]))
    rigid = m.copy()
    if s > 0:
        rigid[:3, :3] /= s
    check_rigid(rigid, f"pose of frame {i}")
    return m


def integrate(views: list[DepthView], voxel_mm: float | None = None, trunc_mm: float | None = None,
              min_weight: float = 1.0) -> TsdfSurface:
    """Fuse ``views`` into one TSDF and return its surface points.

    ``voxel_mm`` defaults to 1/85 of the median depth (1 mm at 85 mm, 0.25 mm in a sinus seen from 2 cm) and
    ``trunc_mm`` to 8 voxels (about 9 % of the depth): the band must be wider than the disagreement between
    frames, or each frame's surface stays on its own, and monocular depth disagrees by several per cent
    (``docs/BENCHMARKS_fusion.md``: 4 voxels left the laparoscopy error at 21 mm, 8 took it to 6 mm). Voxels
    seen by fewer than ``min_weight`` frames do not give surface points."""
    if len(views) < 2:
        raise InputError("Fusion needs at least two frames; register a single frame directly instead.")
    poses = [_check_pose(v.pose, i) for i, v in enumerate(views)]
    placed, depths = [], []
    for v, m in zip(views, poses, strict=True):
        d = np.asarray(v.depth, float)
        ok = np.isfinite(d) & (d > 0)
        if ok.sum() < 3:
            raise InputError("A frame has no valid depth: it cannot be fused.")
        vv, uu = np.nonzero(ok)
        z = d[ok]
        cam = np.stack([(uu - v.cx) / v.fx * z, (vv - v.cy) / v.fy * z, z], 1)
        placed.append(cam @ m[:3, :3].T + m[:3, 3])
        depths.append(np.median(z) * np.cbrt(np.linalg.det(m[:3, :3])))
    voxel = float(voxel_mm) if voxel_mm else float(np.median(depths)) / 85.0
    if not voxel > 0:
        raise InputError(f"The fusion voxel size must be positive, got {voxel_mm}.")
    trunc = float(trunc_mm) if trunc_mm else 8.0 * voxel
    allp = np.concatenate(placed)
    lo = allp.min(0) - 2 * trunc
    hi = allp.max(0) + 2 * trunc
    shape = np.ceil((hi - lo) / voxel).astype(int) + 1
    while np.prod(shape.astype(float)) > MAX_VOXELS:
        voxel *= 1.25
        shape = np.ceil((hi - lo) / voxel).astype(int) + 1
    trunc = max(trunc, 2.0 * voxel)

    # Only voxels near some observed point can hold the surface: integrate those, not the whole box
    from scipy.ndimage import binary_dilation

    near = np.zeros(shape, bool)
    idx = np.floor((allp - lo) / voxel).astype(int)
    near[idx[:, 0], idx[:, 1], idx[:, 2]] = True
    reach = int(np.ceil(trunc / voxel))
    near = binary_dilation(near, np.ones((3, 3, 3), bool), iterations=reach)
    cells = np.argwhere(near)
    centres = lo + (cells + 0.5) * voxel
    sdf = np.zeros(len(cells))
    weight = np.zeros(len(cells))
    for v, m in zip(views, poses, strict=True):
        inv = np.linalg.inv(m)
        p = centres @ inv[:3, :3].T + inv[:3, 3]
        scale = np.cbrt(np.linalg.det(m[:3, :3]))  # camera units -> world mm
        z = p[:, 2]
        front = z > 1e-6
        u = np.full(len(p), -1)
        w = np.full(len(p), -1)
        u[front] = np.round(p[front, 0] / z[front] * v.fx + v.cx).astype(int)
        w[front] = np.round(p[front, 1] / z[front] * v.fy + v.cy).astype(int)
        h, wd = v.depth.shape
        inside = front & (u >= 0) & (u < wd) & (w >= 0) & (w < h)
        d = np.zeros(len(p))
        d[inside] = v.depth[w[inside], u[inside]]
        seen = inside & np.isfinite(d) & (d > 0)
        dist = (d - z) * scale  # positive in front of the surface
        use = seen & (dist > -trunc)
        value = np.clip(dist[use] / trunc, -1.0, 1.0)
        sdf[use] = (sdf[use] * weight[use] + value) / (weight[use] + 1.0)
        weight[use] += 1.0
    field = np.ones(shape, np.float32)
    wfield = np.zeros(shape, np.float32)
    field[cells[:, 0], cells[:, 1], cells[:, 2]] = np.where(weight > 0, sdf, 1.0)  # unseen: free space
    wfield[cells[:, 0], cells[:, 1], cells[:, 2]] = weight
    points, normals, weights = _zero_crossings(field, wfield, lo, voxel, min_weight)
    return TsdfSurface(points, normals, weights, voxel, trunc, len(views))


def _zero_crossings(field, wfield, lo, voxel, min_weight):
    """Surface points where the field changes sign between two neighbours that both saw the surface (neither
    clamped at the truncation, which would mark the edge of the observed band, not the surface)."""
    gx, gy, gz = np.gradient(field)
    out_p, out_n, out_w = [], [], []
    good = (wfield >= min_weight) & (np.abs(field) < 1.0)
    for axis in range(3):
        a = [slice(None)] * 3
        b = [slice(None)] * 3
        a[axis], b[axis] = slice(0, -1), slice(1, None)
        fa, fb = field[tuple(a)], field[tuple(b)]
        hit = good[tuple(a)] & good[tuple(b)] & (np.sign(fa) != np.sign(fb))
        ijk = np.argwhere(hit).astype(float)
        t = fa[hit] / (fa[hit] - fb[hit])
        ijk[:, axis] += t
        out_p.append(lo + (ijk + 0.5) * voxel)
        g = np.stack([gx[tuple(a)][hit], gy[tuple(a)][hit], gz[tuple(a)][hit]], 1)
        out_n.append(g)
        out_w.append(np.minimum(wfield[tuple(a)][hit], wfield[tuple(b)][hit]))
    points = np.concatenate(out_p)
    normals = np.concatenate(out_n)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.divide(normals, length, out=np.zeros_like(normals), where=length > 0)
    return points, normals, np.concatenate(out_w)


def fuse_tsdf_clouds(clouds: list[np.ndarray], poses: list[np.ndarray], voxel_mm: float | None = None,
                     trunc_mm: float | None = None, min_weight: float = 1.0) -> TsdfSurface:
    """TSDF fusion of camera-frame ``clouds`` placed by ``poses`` (camera -> world)."""
    if len(clouds) != len(poses):
        raise InputError(f"Fusion needs one pose per cloud: {len(clouds)} clouds, {len(poses)} poses.")
    views = []
    for i, (cloud, pose) in enumerate(zip(clouds, poses, strict=True)):
        pts = np.asarray(cloud, float)
        if pts.ndim != 2 or pts.shape[1:] != (3,) or len(pts) == 0:
            raise InputError(f"Frame {i}: the cloud must be a non-empty (N, 3) array, got shape {pts.shape}.")
        if not np.all(np.isfinite(pts)):
            raise InputError(f"Frame {i}: the cloud has NaN/inf points; drop invalid depth first.")
        depth, fx, fy, cx, cy = cloud_depth_image(pts)
        views.append(DepthView(depth, fx, fy, cx, cy, np.asarray(pose, float)))
    return integrate(views, voxel_mm, trunc_mm, min_weight)
