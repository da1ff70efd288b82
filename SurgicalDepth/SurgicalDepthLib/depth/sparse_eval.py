"""Scale-free depth evaluation on real video against sparse references (e.g. SfM points per frame).

A reference is, per frame, rows ``[u, v, z]``: pixel coordinates in that frame and the depth of a
reconstructed point, in arbitrary units (SfM has no metric scale). Monocular depth is therefore
compared only up to scale: per frame, the prediction sampled at the points (bilinear) is aligned
either by the ratio of medians (the SCARED/KITTI protocol) or by least-squares scale and shift
(MiDaS), then AbsRel, delta<1.25 and RMSE-log are computed; Spearman's rank correlation needs no
alignment at all. Two baselines are scored the same way in the same run: a constant depth (what
any model must beat; its Spearman is 0 by definition, it ranks nothing) and the brightness
heuristic ``depth ~ 1/sqrt(intensity)`` (a light at the scope tip falls off with the square of
distance). Dataset figures are means of per-frame values.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
from scipy.ndimage import map_coordinates
from scipy.stats import spearmanr

from SurgicalAICore.errors import InputError
from SurgicalAICore.progress import Progress

ALIGNMENTS = ("median", "lsq")
METRICS = ("abs_rel", "delta1", "rmse_log")
BASELINES = ("constant", "brightness")


def load_sparse_references(path: str | Path) -> dict[str, np.ndarray]:
    """Frame id -> float64 (N, 3) ``[u, v, z]`` from an ``.npz``; NaN or a bad shape is refused (points with
    depth <= 0, behind the camera, are legitimate SfM output and are ignored when scoring)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Sparse reference file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            raw = {str(k): data[k] for k in data.files}
    except MemoryError:
        raise
    except Exception as error:  # zipfile, zlib and numpy's header parser raise many types for a corrupt file
        reason = " ".join(str(error).split())[:120] or type(error).__name__
        raise InputError(f"Cannot read sparse references {path}: {reason}") from None
    if not raw:
        raise InputError(f"Sparse reference file {path} holds no frame.")
    for key, rows in raw.items():
        if rows.dtype.kind not in "iuf":  # complex, text or records would be cast silently or fail later
            raise InputError(f"Sparse references of frame {key} must be real numbers, got {rows.dtype}.")
    refs = {key: rows.astype(np.float64) for key, rows in raw.items()}
    for key, rows in refs.items():
        if rows.ndim != 2 or rows.shape[1] != 3:
            raise InputError(f"Sparse references of frame {key} must be N x 3 [u, v, z], got {rows.shape}.")
        if not np.all(np.isfinite(rows)):
            raise InputError(f"Sparse references of frame {key} contain NaN or infinite values.")
    return refs


def sample_bilinear(depth: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Values of ``depth`` (H, W) at sub-pixel ``uv`` (N, 2), pixel centres at integers."""
    return map_coordinates(np.asarray(depth, np.float64), [uv[:, 1], uv[:, 0]], order=1, mode="nearest")


def _aligned(p: np.ndarray, z: np.ndarray, alignment: str) -> np.ndarray:
    if alignment == "median":
        return p * (np.median(z) / np.median(p))
    a = np.stack([p, np.ones_like(p)], axis=1)
    (s, t), *_ = np.linalg.lstsq(a, z, rcond=None)
    if s <= 0:  # anti-correlated prediction: a shift alone is the best non-inverting fit
        s, t = 0.0, float(np.mean(z))
    # a shift can push far points below zero; depth stays positive
    return np.maximum(s * p + t, 1e-3 * float(np.median(z)))


def _metrics(p: np.ndarray, z: np.ndarray) -> dict[str, float]:
    ratio = np.maximum(p / z, z / p)
    return {"abs_rel": float(np.mean(np.abs(p - z) / z)),
            "delta1": float(np.mean(ratio < 1.25)),
            "rmse_log": float(np.sqrt(np.mean((np.log(p) - np.log(z)) ** 2)))}


def sparse_frame_metrics(pred: np.ndarray, uvz: np.ndarray, mask: np.ndarray | None = None,
                         constant: bool = False) -> dict[str, float]:
    """Metrics of one predicted depth map against its sparse points (both alignments, Spearman)."""
    h, w = pred.shape
    uvz = np.asarray(uvz, np.float64)
    keep = (uvz[:, 2] > 0) & (uvz[:, 0] >= 0) & (uvz[:, 0] <= w - 1) & (uvz[:, 1] >= 0) & (uvz[:, 1] <= h - 1)
    if mask is not None:
        ui = np.clip(np.round(uvz[:, 0]).astype(int), 0, w - 1)
        vi = np.clip(np.round(uvz[:, 1]).astype(int), 0, h - 1)
        keep &= np.asarray(mask, bool)[vi, ui]
    uvz = uvz[keep]
    p = sample_bilinear(pred, uvz[:, :2])
    ok = np.isfinite(p) & (p > 0)
    p, z = p[ok], uvz[ok, 2]
    if len(z) < 3:
        raise InputError("Fewer than 3 reference points fall on valid predicted depth in this frame.")
    row: dict[str, float] = {"points": len(z)}
    for alignment in ALIGNMENTS:
        row.update({f"{alignment}_{k}": v for k, v in _metrics(_aligned(p, z, alignment), z).items()})
    rho = 0.0 if constant or np.ptp(p) == 0 else float(spearmanr(p, z).statistic)
    row["spearman"] = rho if np.isfinite(rho) else 0.0
    return row


def brightness_depth(rgb: np.ndarray, blur_px: float = 2.0) -> np.ndarray:
    """The brightness heuristic: depth ~ 1 / sqrt(intensity) (inverse-square fall-off of a tip light)."""
    grey = np.asarray(rgb, np.float32).mean(axis=2) / 255.0
    if blur_px > 0:
        grey = cv2.GaussianBlur(grey, (0, 0), blur_px)
    return (1.0 / np.sqrt(np.maximum(grey, 1.0 / 255.0))).astype(np.float32)


def constant_depth(rgb: np.ndarray) -> np.ndarray:
    return np.ones(np.asarray(rgb).shape[:2], np.float32)


def match_frames(frames_dir: str | Path, ids: Sequence[str]) -> dict[str, Path]:
    """Frame id -> image file whose name (digits) equals the id, e.g. '2700' -> 00002700.jpg."""
    folder = Path(frames_dir)
    if not folder.is_dir():
        raise InputError(f"Frame folder not found: {folder}")
    by_number: dict[int, Path] = {}
    for f in folder.iterdir():
        if f.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff") and f.stem.isdigit():
            by_number[int(f.stem)] = f
    out = {}
    for key in ids:
        if not key.isdigit() or int(key) not in by_number:
            raise InputError(f"No image for reference frame '{key}' in {folder}.")
        out[key] = by_number[int(key)]
    return out


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError(f"Cannot read image {path}.")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_mask(path: str | Path | None, shape: tuple[int, int]) -> np.ndarray | None:
    """Field-of-view mask (> 127 valid) of the frames' size, or None."""
    if path is None:
        return None
    m = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if m is None:
        raise InputError(f"Cannot read mask {path}.")
    if m.shape != tuple(shape):
        raise InputError(f"Mask {path} is {m.shape[1]}x{m.shape[0]}, the frames {shape[1]}x{shape[0]}.")
    return m > 127


Predictor = Callable[[list], np.ndarray]


def evaluate_sparse(predictors: dict[str, Predictor], frames_dir, refs_path, mask_path=None, every: int = 1,
                    progress=None, cancel=None, batch_size: int = 4) -> tuple[list[dict], dict]:
    """Per-frame rows and a summary for each named predictor (a list of RGB frames -> (N, H, W) depth).

    The baselines ``constant`` and ``brightness`` are added to ``predictors`` unless already named.
    Every input is read and checked before the first prediction, so bad input fails fast.
    """
    if every < 1:
        raise InputError("--every must be at least 1.")
    refs = load_sparse_references(refs_path)
    ids = sorted(refs, key=lambda k: int(k) if k.isdigit() else -1)[::every]
    files = match_frames(frames_dir, ids)
    all_predictors = dict(predictors)
    all_predictors.setdefault("constant", lambda fs: np.stack([constant_depth(f) for f in fs]))
    all_predictors.setdefault("brightness", lambda fs: np.stack([brightness_depth(f) for f in fs]))
    p = Progress.of(progress, cancel)
    rows: list[dict] = []
    size = mask = None
    for start in range(0, len(ids), batch_size):
        chunk = ids[start:start + batch_size]
        frames = [read_rgb(files[k]) for k in chunk]
        for k, f in zip(chunk, frames, strict=True):
            if size is None:
                size = f.shape[:2]
                mask = read_mask(mask_path, size)
            elif f.shape[:2] != size:
                raise InputError(f"Frame {files[k].name} is {f.shape[1]}x{f.shape[0]}, earlier frames "
                                 f"{size[1]}x{size[0]}: all frames must have one size.")
        for name, predict in all_predictors.items():
            preds = predict(frames)
            for k, pred in zip(chunk, preds, strict=True):
                try:
                    m = sparse_frame_metrics(pred, refs[k], mask, constant=name == "constant")
                except InputError:
                    continue  # too few points on valid depth: the frame says nothing about this method
                rows.append({"frame": k, "method": name, **m})
        p.step(min(len(ids), start + batch_size) / len(ids), f"{min(len(ids), start + batch_size)}/{len(ids)} frames")
    if not rows:
        raise InputError("No frame had enough reference points on valid predicted depth.")
    return rows, summarise_sparse(rows)


def summarise_sparse(rows: list[dict]) -> dict:
    keys = [f"{a}_{m}" for a in ALIGNMENTS for m in METRICS] + ["spearman"]
    out = {}
    for name in dict.fromkeys(r["method"] for r in rows):
        sel = [r for r in rows if r["method"] == name]
        out[name] = {"frames": len(sel), "points": int(np.sum([r["points"] for r in sel])),
                     **{k: round(float(np.mean([r[k] for r in sel])), 4) for k in keys}}
    return out
