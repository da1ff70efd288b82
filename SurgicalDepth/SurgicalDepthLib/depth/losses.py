"""Depth training losses on valid pixels: scale-invariant log loss and multi-scale gradient matching.

Both work on log-depth residuals ``r = log(pred) - log(gt)``. SI-log (Eigen et al. 2014) is
``mean(r^2) - lam * mean(r)^2``: with ``lam = 1`` it ignores a global scale entirely; ``lam < 1``
keeps a share of the scale error so the network still learns metric depth. Gradient matching
(as in MiDaS) penalises ``|dr/dx| + |dr/dy|`` over pixel pairs that are both valid, at several
scales, which sharpens depth edges and is also scale invariant.
"""
from __future__ import annotations

import torch


def _log_residual(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor, eps: float = 1e-3):
    valid = valid & (gt > eps) & torch.isfinite(gt)
    r = torch.log(pred.clamp_min(eps)) - torch.log(gt.clamp_min(eps))
    return torch.where(valid, r, torch.zeros_like(r)), valid


def silog_loss(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor, lam: float = 0.85) -> torch.Tensor:
    """Per-image SI-log, averaged over the batch; tensors (B, 1, H, W) or (B, H, W)."""
    r, valid = _log_residual(pred, gt, valid)
    dims = tuple(range(1, r.dim()))
    n = valid.sum(dim=dims).clamp_min(1).to(r.dtype)
    mean = r.sum(dim=dims) / n
    mean_sq = (r * r).sum(dim=dims) / n
    loss = (mean_sq - lam * mean * mean).clamp_min(0.0)
    has = valid.flatten(1).any(dim=1)
    return loss[has].mean() if has.any() else pred.sum() * 0.0


def gradient_matching_loss(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor, scales: int = 4) -> torch.Tensor:
    r, valid = _log_residual(pred, gt, valid)
    if r.dim() == 3:
        r, valid = r.unsqueeze(1), valid.unsqueeze(1)
    total = r.new_zeros(())
    for s in range(scales):
        if s:
            step = 2 ** s
            r_s = r[..., ::step, ::step]
            v_s = valid[..., ::step, ::step]
        else:
            r_s, v_s = r, valid
        vx = v_s[..., :, 1:] & v_s[..., :, :-1]
        vy = v_s[..., 1:, :] & v_s[..., :-1, :]
        gx = (r_s[..., :, 1:] - r_s[..., :, :-1]).abs() * vx
        gy = (r_s[..., 1:, :] - r_s[..., :-1, :]).abs() * vy
        n = (vx.sum() + vy.sum()).clamp_min(1)
        total = total + (gx.sum() + gy.sum()) / n
    return total / scales


def depth_loss(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor, lam: float = 0.85,
               gradient_weight: float = 0.5) -> torch.Tensor:
    """The training objective: SI-log + ``gradient_weight`` x gradient matching."""
    return silog_loss(pred, gt, valid, lam) + gradient_weight * gradient_matching_loss(pred, gt, valid)


def scale_shift_invariant_loss(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor,
                               eps: float = 1e-3) -> torch.Tensor:
    """Mean absolute error in inverse depth after the per-image least-squares scale and shift (Ranftl et al.,
    MiDaS, TPAMI 2022), normalised by the mean ground-truth inverse depth. It matches the scale-and-shift
    alignment of the real-video evaluation (``depth_sparse_eval``), where no metric scale exists."""
    if pred.dim() == 3:
        pred, gt, valid = pred.unsqueeze(1), gt.unsqueeze(1), valid.unsqueeze(1)
    valid = valid & (gt > eps) & torch.isfinite(gt)
    p = (1.0 / pred.clamp_min(eps)).flatten(1)
    g = torch.where(valid, 1.0 / gt.clamp_min(eps), torch.zeros_like(gt)).flatten(1)
    m = valid.flatten(1).to(p.dtype)
    n = m.sum(1).clamp_min(1)
    # closed-form 2x2 normal equations per image: [sum p^2, sum p; sum p, n] [s, t] = [sum p g, sum g]
    a00, a01, b0, b1 = (m * p * p).sum(1), (m * p).sum(1), (m * p * g).sum(1), (m * g).sum(1)
    det = (a00 * n - a01 * a01).clamp_min(1e-12)
    s = (n * b0 - a01 * b1) / det
    t = (a00 * b1 - a01 * b0) / det
    err = ((s[:, None] * p + t[:, None] - g).abs() * m).sum(1) / n
    norm = (b1 / n).clamp_min(1e-6)
    has = m.sum(1) > 2
    return (err / norm)[has].mean() if has.any() else pred.sum() * 0.0
