"""Self-supervised adaptation on real sinus video (jhu_sinus_dev), the target protocol of issue #10.

Adapts the bundled depth model on frames 2603-2800 (positions 0-197) at 256x320 with ``adapt_depth_model``
within a wall-clock budget, then evaluates on the held-back frames 2801-2983 only, against the dataset's
SfM sparse depth (scale-free), median-scaled per frame: AbsRel, delta<1.25, Spearman. Baselines in the same
run: the model before adaptation, constant depth, and brightness 1/sqrt(I) (inverse-square falloff).

    nice -n 10 python benchmarks/bench_adapt_depth.py --minutes 15 --threads 2 --json benchmarks/results_adapt.json

The dataset is development-only (non-commercial): the adapted model is written to a temporary folder.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for sub in ("", "SegmentationAI", "SurgicalDepth"):
    sys.path.insert(0, str(ROOT / sub))

DATA = ROOT.parent / "shared" / "data" / "endoscopy" / "jhu_sinus_dev"
FRAMES = "_start_002603_end_002984_stride_1000_segment_00"


def per_frame_metrics(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    from scipy.stats import spearmanr

    scaled = pred * np.median(gt) / np.median(pred)
    rel = np.abs(scaled - gt) / gt
    ratio = np.maximum(scaled / gt, gt / scaled)
    rho = spearmanr(pred, gt).correlation if np.ptp(pred) > 0 else 0.0
    return {"abs_rel": float(np.mean(rel)), "delta1": float(np.mean(ratio < 1.25)), "spearman": float(rho)}


def evaluate(depth_fn, images, sparse) -> dict[str, float]:
    rows = []
    for name, rgb in images:
        pts = sparse[name]
        d = depth_fn(rgb)
        u = np.clip(np.round(pts[:, 0]).astype(int), 0, d.shape[1] - 1)
        v = np.clip(np.round(pts[:, 1]).astype(int), 0, d.shape[0] - 1)
        rows.append(per_frame_metrics(np.maximum(d[v, u].astype(np.float64), 1e-6), pts[:, 2].astype(np.float64)))
    return {k: round(float(np.mean([r[k] for r in rows])), 4) for k in rows[0]}


def brightness_depth(rgb: np.ndarray) -> np.ndarray:
    import cv2

    grey = cv2.GaussianBlur(rgb.astype(np.float32).mean(2), (0, 0), 5) / 255.0
    return 1.0 / np.sqrt(np.clip(grey, 1e-3, None))


def _printer():
    last = [-1.0]

    def show(fraction: float, message: str) -> None:
        if fraction - last[0] >= 0.02 or fraction >= 1.0:
            last[0] = fraction
            print(f"{time.strftime('%H:%M:%S')} {fraction:.2f} {message}", flush=True)

    return show


def motion_check(motion, first: int, sparse) -> dict[str, float]:
    """Our motion against the dataset's SfM (judging only; never fed to the adaptation): median rotation and
    translation-direction errors of the pairs, median per-frame Spearman of our point depths vs the
    reference points within 3 px."""
    from scipy.stats import spearmanr

    T = np.load(DATA / "derived" / "T_cam_from_world.npy")
    rot, direction, rho = [], [], []
    for p in motion.pairs:
        rel = T[first + p.j] @ np.linalg.inv(T[first + p.i])
        rot.append(np.degrees(np.arccos(np.clip((np.trace(rel[:3, :3] @ p.R.T) - 1) / 2, -1, 1))))
        t = rel[:3, 3] / np.linalg.norm(rel[:3, 3])
        direction.append(np.degrees(np.arccos(np.clip(float(p.t @ t), -1, 1))))
        ref = sparse[str(2603 + first + p.i)]
        uv = (p.uv + 0.5) * 960 / motion.camera.width - 0.5
        dist = np.linalg.norm(uv[:, None] - ref[None, :, :2], axis=2)
        near = dist.argmin(1)
        ok = dist[np.arange(len(uv)), near] < 3
        if ok.sum() >= 10:
            rho.append(spearmanr(p.depth[ok], ref[near[ok], 2]).correlation)
    return {"pairs": len(motion.pairs), "rotation_error_deg": round(float(np.median(rot)), 3),
            "direction_error_deg": round(float(np.median(direction)), 2),
            "point_depth_spearman": round(float(np.median(rho)), 3) if rho else None}


def cached_motion(path: Path | None, minutes: list[float], checks: list):
    """Wraps ``adapt._clip_motion``: the motion of the last run is read from ``path`` when present (its CPU
    minutes are charged to the budget by the caller), else estimated, timed and saved there."""
    import torch

    from SurgicalDepthLib.depth import adapt

    estimate = adapt._clip_motion

    def clip_motion(frames, cam, fov, cfg, p, cancel):
        if path is not None and path.exists():
            state = torch.load(str(path), weights_only=True)
            minutes.append(float(state["cpu_minutes"]))
            motion = adapt._motion_from_state(state["motion"])
        else:
            cpu0 = time.process_time()
            motion = estimate(frames, cam, fov, cfg, p, cancel)
            minutes.append((time.process_time() - cpu0) / 60.0)
            if path is not None:
                torch.save({"motion": adapt._motion_to_state(motion), "cpu_minutes": minutes[-1]}, str(path))
        checks.append(motion)  # judged after the run, outside the budget
        return motion

    adapt._clip_motion = clip_motion


def main() -> int:
    import cv2
    import torch

    from SurgicalDepthLib.depth.adapt import AdaptConfig, adapt_depth_model
    from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics
    from SurgicalDepthLib.depth.loaders import load_depth_model

    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=15.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clock", default="cpu", help="budget clock: cpu (CPU time / threads, robust to a shared "
                    "machine) or wall")
    ap.add_argument("--motion", default="pairs", choices=("pairs", "sfm"), help="camera motion for adaptation")
    ap.add_argument("--sparse-weight", type=float, default=None, help="weight of the sparse-point loss")
    ap.add_argument("--consistency-weight", type=float, default=None, help="weight of the dense depth consistency")
    ap.add_argument("--distill-weight", type=float, default=None, help="weight of the distillation to the source")
    ap.add_argument("--prior-shape-weight", type=float, default=None, help="weight of the log-depth shape prior")
    ap.add_argument("--train-layers", choices=("all", "decoder"), default=None, help="layers that adapt")
    ap.add_argument("--lr", type=float, default=None, help="learning rate of the network")
    ap.add_argument("--max-steps", type=int, default=None, help="stop after this many steps")
    ap.add_argument("--seed", type=int, default=None, help="seed of the adaptation's batches and initialisation")
    ap.add_argument("--motion-cache", type=Path, help="reuse the motion estimated by an earlier run with the "
                    "same frames and settings (saved here when absent); its CPU time is taken off the budget")
    ap.add_argument("--train", default="0-197", help="positions of the adaptation frames (2603-2800)")
    ap.add_argument("--eval-first", type=int, default=2801)
    ap.add_argument("--model", type=Path, help="source model folder to adapt (default: the bundled model)")
    ap.add_argument("--json")
    args = ap.parse_args()
    if not DATA.is_dir():
        print(f"skipped: {DATA} not found")
        return 0
    torch.set_num_threads(args.threads)
    K = np.loadtxt(DATA / "derived" / "K_960x540.txt")
    camera = CameraIntrinsics(K[0, 0], K[1, 1], K[0, 2], K[1, 2], 960, 540)
    sparse = dict(np.load(DATA / "derived" / "sparse_depth_960x540.npz"))
    eval_ids = [i for i in range(args.eval_first, 2984) if str(i) in sparse]
    images = [(str(i), cv2.cvtColor(cv2.imread(str(DATA / FRAMES / f"{i:08d}.jpg")), cv2.COLOR_BGR2RGB))
              for i in eval_ids]
    first, last = (int(x) for x in args.train.split("-"))
    assert 2603 + last < args.eval_first, "adaptation frames must not overlap the evaluation frames"
    # the adaptation frames themselves, scored against the dataset's SfM (never shown to the adaptation)
    seen = [(str(i), cv2.cvtColor(cv2.imread(str(DATA / FRAMES / f"{i:08d}.jpg")), cv2.COLOR_BGR2RGB))
            for i in range(2603 + first, 2604 + last) if str(i) in sparse]
    source = str(args.model) if args.model else None  # None: the bundled model
    before = load_depth_model(source, device="cpu")
    baselines = {"before_adaptation": before.predict, "constant_depth": lambda rgb: np.ones(rgb.shape[:2]),
                 "brightness_inv_sqrt": brightness_depth}
    results = {name: evaluate(fn, images, sparse) for name, fn in baselines.items()}
    results_seen = {name: evaluate(fn, seen, sparse) for name, fn in baselines.items()}
    print(json.dumps({"held_out": results, "adaptation_frames": results_seen}, indent=1), flush=True)
    motion_minutes, checks = [], []
    cached = args.motion_cache is not None and args.motion_cache.exists()
    cached_motion(args.motion_cache, motion_minutes, checks)
    budget = args.minutes
    if cached:
        budget -= float(torch.load(str(args.motion_cache), weights_only=True)["cpu_minutes"])
    config = AdaptConfig(minutes=budget, threads=args.threads, clock=args.clock, motion_source=args.motion)
    for name in ("sparse_weight", "consistency_weight", "distill_weight", "prior_shape_weight", "train_layers", "lr",
                 "max_steps", "seed"):
        if getattr(args, name) is not None:
            setattr(config, name, getattr(args, name))
    with tempfile.TemporaryDirectory() as tmp:
        t0, cpu0 = time.time(), time.process_time()
        res = adapt_depth_model(DATA / FRAMES, Path(tmp) / "adapted", camera=camera,
                                model=source, config=config,
                                frame_range=(first, last),
                                progress=_printer(), log=print)
        wall = time.time() - t0
        adapted = load_depth_model(res.path, device="cpu")
        results["after_adaptation"] = evaluate(adapted.predict, images, sparse)
        results_seen["after_adaptation"] = evaluate(adapted.predict, seen, sparse)
        card = res.card
    cpu_min = (time.process_time() - cpu0) / 60.0
    report = {"machine": platform.processor() or platform.machine(), "threads": args.threads,
              "date": time.strftime("%Y-%m-%d"), "source_model": source or "bundled",
              "adapt_frames": f"{2603 + first}-{2603 + last}",
              "eval_frames": f"{eval_ids[0]}-{eval_ids[-1]} ({len(eval_ids)})", "adapt_wall_min": round(wall / 60, 2),
              "adapt_cpu_min": round(cpu_min, 2), "budget_clock": args.clock, "budget_min": args.minutes,
              "steps": card["training"]["steps"], "motion": card["training"]["motion"],
              "card_metrics": card["metrics"], "motion_source": args.motion,
              "motion_cpu_min": round(motion_minutes[0], 2), "motion_from_cache": cached,
              "motion_vs_dataset_sfm": motion_check(checks[0], first, sparse),
              "settings": card["training"]["settings"], "results": results,
              "results_adaptation_frames": results_seen, "load_average": os.getloadavg()}
    print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
