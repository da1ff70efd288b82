"""Monocular depth metrics (KITTI/SCARED conventions) on valid pixels below a depth cap.

Per frame: AbsRel = mean(|p - g| / g), SqRel = mean((p - g)^2 / g), RMSE (mm), RMSElog (natural log),
and the fractions of pixels with max(p/g, g/p) below 1.25, 1.25^2, 1.25^3. ``median_scaled``
multiplies the prediction by median(g)/median(p) first (the SCARED protocol for scale-ambiguous
monocular depth); ``metric`` compares millimetres as predicted. Predictions are clipped to
[min_depth, cap] like the usual evaluation code; pixels whose ground truth is outside are ignored.
Dataset summaries are means of per-frame values.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from SurgicalAICore.errors import InputError

METRIC_NAMES = ("abs_rel", "sq_rel", "rmse_mm", "rmse_log", "delta1", "delta2", "delta3")


def depth_metrics(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None, cap_mm: float = 300.0,
                  min_mm: float = 0.5, median_scaled: bool = False) -> dict[str, float]:
    """Metrics of one frame; raises InputError if no pixel is valid."""
    p = np.asarray(pred, np.float64)
    g = np.asarray(gt, np.float64)
    if p.shape != g.shape:
        raise InputError(f"Prediction {p.shape} and ground truth {g.shape} differ in size.")
    mask = np.isfinite(g) & (g > min_mm) & (g <= cap_mm) & np.isfinite(p)
    if valid is not None:
        mask &= np.asarray(valid, bool)
    if not mask.any():
        raise InputError("No valid ground-truth pixel within the depth range.")
    p, g = p[mask], g[mask]
    scale = 1.0
    if median_scaled:
        med = np.median(p)
        if med <= 0:
            raise InputError("Predicted depth is not positive: cannot median-scale.")
        scale = float(np.median(g) / med)
        p = p * scale
    p = np.clip(p, min_mm, cap_mm)
    ratio = np.maximum(p / g, g / p)
    out = {
        "abs_rel": float(np.mean(np.abs(p - g) / g)),
        "sq_rel": float(np.mean((p - g) ** 2 / g)),
        "rmse_mm": float(np.sqrt(np.mean((p - g) ** 2))),
        "rmse_log": float(np.sqrt(np.mean((np.log(p) - np.log(g)) ** 2))),
        "delta1": float(np.mean(ratio < 1.25)),
        "delta2": float(np.mean(ratio < 1.25 ** 2)),
        "delta3": float(np.mean(ratio < 1.25 ** 3)),
    }
    out["scale"] = scale
    out["pixels"] = int(mask.sum())
    return out


def summarise(rows: Iterable[dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over frames."""
    rows = list(rows)
    if not rows:
        raise InputError("No frame to summarise.")
    return {k: float(np.mean([r[k] for r in rows])) for k in METRIC_NAMES}


def evaluate_estimator(estimator, dataset, cap_mm: float = 300.0, progress=None, cancel=None,
                       batch_size: int = 8) -> list[dict[str, object]]:
    """Per-frame rows (both protocols) for a DepthEstimator over a SyntheticDepthDataset."""
    from SurgicalAICore.progress import Progress

    p = Progress.of(progress, cancel)
    rows: list[dict[str, object]] = []
    n = len(dataset)
    if n == 0:
        raise InputError("The dataset selection holds no frame.")
    for start in range(0, n, batch_size):
        items = [dataset[i] for i in range(start, min(n, start + batch_size))]
        preds = estimator.predict_batch([it["rgb"] for it in items])
        for it, pred in zip(items, preds, strict=False):
            row: dict[str, object] = {"frame": it["frame"], "path": it["path"], "scenario": it["scenario"]}
            try:
                for prefix, med in (("metric", False), ("median", True)):
                    m = depth_metrics(pred, it["depth_mm"], it["valid"], cap_mm, median_scaled=med)
                    row.update({f"{prefix}_{k}": v for k, v in m.items() if k != "pixels"})
                row["pixels"] = m["pixels"]
            except InputError:
                continue  # a frame with nothing within the cap carries no information
            rows.append(row)
        p.step(min(n, start + batch_size) / n, f"{min(n, start + batch_size)}/{n} frames")
    if not rows:
        raise InputError("No frame had valid depth within the cap.")
    return rows
