"""Losses for self-supervised depth adaptation on a video (Monodepth2-style, Godard et al. ICCV 2019).

- photometric: 0.85 SSIM + 0.15 L1 between the target frame and a neighbour warped through the
  predicted depth and the estimated motion; the per-pixel minimum over the neighbours handles
  occlusions, and pixels where the unwarped neighbour already matches better (static camera, no
  texture) are masked out ("auto-masking"); the field stop and specular highlights are masked too;
- sparse: scale-invariant log difference between the predicted depth at triangulated points and
  their (scale-free) depths;
- smoothness: edge-aware first derivatives of the mean-normalised inverse depth;
- prior: log-depth difference to the frozen source model, which keeps the adapted network close to
  what it learnt on synthetic data (and keeps its millimetre scale);
- distillation: scale-and-shift-invariant L1 between the normalised disparities of the adapted and the
  frozen source model (as MiDaS aligns disparities, Ranftl et al. TPAMI 2022): a prior on the shape only,
  blind to the per-frame scale that the clip's geometry may legitimately change;
- depth consistency: the predicted depth of frame i, moved into frame j with the SfM relative pose,
  against frame j's predicted depth where both are seen (Liu et al., IEEE TMI 2020): a dense constraint on
  geometry between registered frames, where the sparse loss only constrains the triangulated points.

All tensors are (B, C, H, W); depths are positive.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def ssim_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(1 - SSIM) / 2 per pixel over 3x3 windows (reflect padding)."""
    c1, c2 = 0.01**2, 0.03**2
    x = F.pad(x, (1, 1, 1, 1), mode="reflect")
    y = F.pad(y, (1, 1, 1, 1), mode="reflect")
    mx, my = F.avg_pool2d(x, 3, 1), F.avg_pool2d(y, 3, 1)
    sx = F.avg_pool2d(x * x, 3, 1) - mx * mx
    sy = F.avg_pool2d(y * y, 3, 1) - my * my
    sxy = F.avg_pool2d(x * y, 3, 1) - mx * my
    num = (2 * mx * my + c1) * (2 * sxy + c2)
    den = (mx * mx + my * my + c1) * (sx + sy + c2)
    return torch.clamp((1 - num / den) / 2, 0, 1)


def photometric_error(a: torch.Tensor, b: torch.Tensor, alpha: float = 0.85) -> torch.Tensor:
    """(B, 1, H, W) per-pixel appearance distance of two images in [0, 1]."""
    return alpha * ssim_distance(a, b).mean(1, keepdim=True) + (1 - alpha) * (a - b).abs().mean(1, keepdim=True)


def warp(
    source: torch.Tensor, depth: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``source`` (B, C, H, W) at the projections of the target pixels lifted with ``depth``.

    ``K`` (3, 3) for this resolution; ``R`` (B, 3, 3), ``t`` (B, 3): X_source = R X_target + t.
    Returns the warped image and a (B, 1, H, W) mask of pixels that land inside the source, in front.
    """
    grid, _, inside = _project(depth, K, R, t)
    warped = F.grid_sample(source, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return warped, inside


def _project(
    depth: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The target pixels lifted with ``depth`` and moved by (R, t): sampling grid (B, H, W, 2) in [-1, 1],
    their depth in the other camera (B, 1, H, W), and the mask of those in front and inside."""
    b, _, h, w = depth.shape
    v, u = torch.meshgrid(torch.arange(h, dtype=depth.dtype), torch.arange(w, dtype=depth.dtype), indexing="ij")
    rays = torch.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)]).reshape(3, -1)
    X = depth.reshape(b, 1, -1) * rays.unsqueeze(0)
    Y = R @ X + t.reshape(b, 3, 1)
    z = Y[:, 2].clamp(min=1e-3)
    us = K[0, 0] * Y[:, 0] / z + K[0, 2]
    vs = K[1, 1] * Y[:, 1] / z + K[1, 2]
    grid = torch.stack([2 * us / (w - 1) - 1, 2 * vs / (h - 1) - 1], dim=-1).reshape(b, h, w, 2)
    inside = (grid.abs() <= 1).all(-1) & (Y[:, 2] > 1e-3).reshape(b, h, w)
    return grid, z.reshape(b, 1, h, w), inside.unsqueeze(1).to(depth.dtype)


def depth_consistency_loss(
    depth_i: torch.Tensor,
    depth_j: torch.Tensor,
    K: torch.Tensor,
    R: torch.Tensor,
    t: torch.Tensor,
    mask_i: torch.Tensor,
    mask_j: torch.Tensor,
) -> torch.Tensor:
    """Dense depth consistency of frames i and j (Liu et al., TMI 2020): frame i's depth moved into j by
    X_j = R X_i + t (``t`` in the depths' unit) against frame j's depth sampled where it lands, as the
    relative difference |a - b| / (a + b) (scale-free, bounded by 1). Pixels are used where both frames
    are usable (``mask_i``, ``mask_j``: field stop, no speculars) and the point is in front of j and inside.

    Zero for depths and motion that agree; a wrong translation scale or rotation makes it grow."""
    grid, z, inside = _project(depth_i, K, R, t)
    seen = F.grid_sample(depth_j, grid, mode="bilinear", padding_mode="border", align_corners=True)
    usable_j = F.grid_sample(mask_j, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    valid = inside * mask_i * (usable_j > 0.99).to(depth_i.dtype)
    diff = (z - seen).abs() / (z + seen).clamp(min=1e-6)
    return (diff * valid).sum() / valid.sum().clamp(min=1.0)


def min_reprojection_loss(
    target: torch.Tensor,
    warped: list[torch.Tensor],
    sources: list[torch.Tensor],
    valid: list[torch.Tensor],
    mask: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Monodepth2's per-pixel minimum over neighbours, with auto-masking. Returns (loss, used-pixel mask)."""
    big = torch.tensor(10.0, dtype=target.dtype)
    reproj = torch.cat(
        [torch.where(v > 0, photometric_error(target, w), big) for w, v in zip(warped, valid, strict=False)], 1
    )
    identity = torch.cat([photometric_error(target, s) for s in sources], 1)
    # a tiny jitter breaks ties on flat regions, as in Monodepth2
    identity = identity + 1e-5 * torch.randn_like(identity)
    best, _ = reproj.min(1, keepdim=True)
    ident, _ = identity.min(1, keepdim=True)
    used = (best < ident) & (best < big) & (mask > 0)
    used = used.to(target.dtype)
    return (best * used).sum() / used.sum().clamp(min=1.0), used


def smoothness_loss(depth: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Edge-aware smoothness of the mean-normalised disparity."""
    disp = 1.0 / depth
    disp = disp / disp.mean((2, 3), keepdim=True).clamp(min=1e-6)
    dx = (disp[..., :, 1:] - disp[..., :, :-1]).abs()
    dy = (disp[..., 1:, :] - disp[..., :-1, :]).abs()
    ix = (image[..., :, 1:] - image[..., :, :-1]).abs().mean(1, keepdim=True)
    iy = (image[..., 1:, :] - image[..., :-1, :]).abs().mean(1, keepdim=True)
    return (dx * torch.exp(-ix)).mean() + (dy * torch.exp(-iy)).mean()


def sample_depth(depth: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear depth (N,) at pixels ``uv`` (N, 2) of one (1, 1, H, W) map."""
    h, w = depth.shape[-2:]
    grid = torch.stack([2 * uv[:, 0] / (w - 1) - 1, 2 * uv[:, 1] / (h - 1) - 1], -1).reshape(1, 1, -1, 2)
    return F.grid_sample(depth, grid.to(depth.dtype), mode="bilinear", align_corners=True).reshape(-1)


def fit_log_scale(pred_at_points: torch.Tensor, points_depth: torch.Tensor) -> torch.Tensor:
    """log s with s * points_depth ~ pred (median of log ratios: robust to bad triangulations)."""
    return torch.median(torch.log(pred_at_points) - torch.log(points_depth)).detach()


def sparse_loss(
    pred_at_points: torch.Tensor, points_depth: torch.Tensor, log_scale: torch.Tensor, clip: float = 0.5
) -> torch.Tensor:
    """Robust scale-invariant log error at triangulated points (residuals beyond ``clip`` are outliers)."""
    r = torch.log(pred_at_points) - torch.log(points_depth) - log_scale
    return torch.clamp(r.abs(), max=clip).mean()


def prior_loss(
    depth: torch.Tensor,
    source_depth: torch.Tensor,
    mask: torch.Tensor,
    shape_weight: float = 1.0,
    scale_weight: float = 1.0,
) -> torch.Tensor:
    """Keep close to the source model: its shape (log depth up to a per-frame offset) and its scale."""
    d = (torch.log(depth) - torch.log(source_depth)) * mask
    n = mask.sum((1, 2, 3)).clamp(min=1.0)
    offset = d.sum((1, 2, 3)) / n
    shape = ((d - offset.view(-1, 1, 1, 1)).abs() * mask).sum((1, 2, 3)) / n
    return shape_weight * shape.mean() + scale_weight * offset.abs().mean()


def _normalised_disparity(depth: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per image: disparity minus its median over ``mask``, divided by its mean absolute deviation there."""
    disp = 1.0 / depth
    out = []
    for d, m in zip(disp, mask, strict=True):
        vals = d[m > 0]
        if vals.numel() < 2:
            vals = d.reshape(-1)
        med = vals.median()
        out.append((d - med) / (vals - med).abs().mean().clamp(min=1e-8))
    return torch.stack(out)


def distillation_loss(depth: torch.Tensor, source_depth: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Scale-and-shift-invariant L1 between the disparities of ``depth`` and the frozen ``source_depth``.

    Median and mean-absolute-deviation alignment (MiDaS's robust form) rather than the least-squares one of
    :func:`.losses.scale_shift_invariant_loss`: speculars and the rim give the adapted map outliers that a
    least-squares fit would follow."""
    a = _normalised_disparity(depth, mask)
    b = _normalised_disparity(source_depth, mask)
    return ((a - b).abs() * mask).sum() / mask.sum().clamp(min=1.0)
