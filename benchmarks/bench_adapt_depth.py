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
    ap.add_argument("--train", default="0-197", help="positions of the adaptation frames (2603-2800)")
    ap.add_argument("--eval-first", type=int, default=2801)
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
    before = load_depth_model(None, device="cpu")
    results = {"before_adaptation": evaluate(before.predict, images, sparse),
               "constant_depth": evaluate(lambda rgb: np.ones(rgb.shape[:2]), images, sparse),
               "brightness_inv_sqrt": evaluate(brightness_depth, images, sparse)}
    print(json.dumps(results, indent=1), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        t0, cpu0 = time.time(), time.process_time()
        res = adapt_depth_model(DATA / FRAMES, Path(tmp) / "adapted", camera=camera,
                                config=AdaptConfig(minutes=args.minutes, threads=args.threads, clock=args.clock),
                                frame_range=(first, last),
                                progress=_printer(), log=print)
        wall = time.time() - t0
        adapted = load_depth_model(res.path, device="cpu")
        results["after_adaptation"] = evaluate(adapted.predict, images, sparse)
        card = res.card
    cpu_min = (time.process_time() - cpu0) / 60.0
    report = {"machine": platform.processor() or platform.machine(), "threads": args.threads,
              "date": time.strftime("%Y-%m-%d"), "adapt_frames": f"{2603 + first}-{2603 + last}",
              "eval_frames": f"{eval_ids[0]}-{eval_ids[-1]} ({len(eval_ids)})", "adapt_wall_min": round(wall / 60, 2),
              "adapt_cpu_min": round(cpu_min, 2), "budget_clock": args.clock, "budget_min": args.minutes,
              "steps": card["training"]["steps"], "motion": card["training"]["motion"],
              "card_metrics": card["metrics"], "results": results}
    print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
