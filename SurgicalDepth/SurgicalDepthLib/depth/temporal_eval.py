"""Temporal consistency of monocular depth on video without ground truth.

Each depth map is divided by its median inside the field of view (scale-free, as the model's scale
is not trusted). For consecutive frames ``t, t+1``:

- ``flicker``: mean relative difference ``|a - b| / ((a + b) / 2)`` of the two median-normalised maps
  at the same pixel, which mixes real change (the camera moved) with flicker;
- ``warped``: the same after following each pixel of frame t to frame t+1 with dense optical flow
  (OpenCV Farneback), only where the flow is forward-backward consistent to one pixel, so the same
  tissue point is compared. What remains is flicker plus the (small, over one frame) depth change
  of that point under camera motion along the axis.

A constant map scores 0 on both by construction: read these numbers next to accuracy, never alone.
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from SurgicalAICore.errors import InputError


def field_of_view_mask(frames: Sequence[np.ndarray], threshold: float = 20.0) -> np.ndarray:
    """Pixels that are lit in the mean frame (the dark border of the scope's field stop is not)."""
    if not frames:
        raise InputError("No frame to build a field-of-view mask from.")
    mean = np.mean([np.asarray(f, np.float32).mean(axis=2) for f in frames], axis=0)
    mask = (mean > threshold).astype(np.uint8)
    return cv2.erode(mask, np.ones((9, 9), np.uint8)) > 0


def _normalised(depth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    d = np.asarray(depth, np.float32)
    med = float(np.median(d[mask & (d > 0)])) if np.any(mask & (d > 0)) else 0.0
    if med <= 0:
        raise InputError("Depth map has no positive value inside the field of view.")
    return d / med


def _flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ga = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
    gb = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
    return cv2.calcOpticalFlowFarneback(ga, gb, None, 0.5, 4, 21, 3, 5, 1.1, 0)


def pair_flows(frame_a: np.ndarray, frame_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward and backward dense flow of a pair (compute once, score several depth methods with it)."""
    return _flow(frame_a, frame_b), _flow(frame_b, frame_a)


def pair_consistency(frame_a, frame_b, depth_a, depth_b, mask, flows=None) -> dict[str, float]:
    """``flicker`` and ``warped`` relative differences of one pair (see the module text)."""
    if frame_a.shape != frame_b.shape or depth_a.shape != frame_a.shape[:2] or depth_b.shape != depth_a.shape:
        raise InputError("Frames and depth maps of a pair must all have one size.")
    a, b = _normalised(depth_a, mask), _normalised(depth_b, mask)
    rel = np.abs(a - b) / np.maximum((a + b) / 2, 1e-6)
    flicker = float(np.mean(rel[mask]))
    fwd, bwd = flows if flows is not None else pair_flows(frame_a, frame_b)
    h, w = a.shape
    u, v = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx, my = u + fwd[..., 0], v + fwd[..., 1]
    back = cv2.remap(bwd, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=1e6)
    consistent = np.hypot(fwd[..., 0] + back[..., 0], fwd[..., 1] + back[..., 1]) < 1.0
    inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
    mask_b = cv2.remap(mask.astype(np.uint8), mx, my, cv2.INTER_NEAREST, borderValue=0) > 0
    keep = mask & consistent & inside & mask_b
    b_at = cv2.remap(b, mx, my, cv2.INTER_LINEAR)
    warped = float(np.mean((np.abs(a - b_at) / np.maximum((a + b_at) / 2, 1e-6))[keep])) if keep.any() else np.nan
    return {"flicker": flicker, "warped": warped, "tracked_fraction": float(keep.sum() / max(mask.sum(), 1))}


def sequence_consistency(frames: Sequence[np.ndarray], depths: Sequence[np.ndarray],
                         mask: np.ndarray | None = None, flows: Sequence | None = None) -> dict[str, float]:
    """Means over consecutive pairs of a sequence (frames uint8 RGB, depths (H, W), all one size);
    ``flows``: the :func:`pair_flows` of each consecutive pair, when already computed."""
    if len(frames) < 2 or len(frames) != len(depths):
        raise InputError("Need at least two frames and one depth map per frame.")
    if len({np.asarray(f).shape for f in frames}) != 1:
        raise InputError("All frames of the sequence must have one size.")
    mask = field_of_view_mask(frames) if mask is None else np.asarray(mask, bool)
    rows = [pair_consistency(frames[i], frames[i + 1], depths[i], depths[i + 1], mask, flows[i] if flows else None)
            for i in range(len(frames) - 1)]
    return {k: float(np.nanmean([r[k] for r in rows])) for k in rows[0]} | {"pairs": len(rows)}
