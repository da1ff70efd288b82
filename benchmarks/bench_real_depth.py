"""Depth on real endoscopic video, scale-free, against the simple baselines (issue 10).

    python benchmarks/bench_real_depth.py --model old=Resources/Models/endoscopy-depth \
        --model new=/work/data-depth/model --synthetic /work/data-depth/sq80 --heldout /work/data-depth/heldout

For each model, in one process on the same frames, with the constant-depth and brightness (1/sqrt(I))
baselines scored the same way:

- ``jhu_sinus_dev`` (real sinus endoscopy, every 10th frame) against SfM sparse depth: median-scaled
  and least-squares scale-and-shift AbsRel, delta<1.25, RMSE-log, Spearman (``eval-depth-sparse``);
- ``lap_video`` (real laparoscopy, no ground truth): temporal consistency of the median-scaled maps,
  raw (flicker) and along dense optical flow (the same tissue point from frame to frame);
- synthetic held-out camera paths and a held-out scenario: median-scaled AbsRel and delta<1.25;
- speed through the API at 256x320 on 2 threads.

Writes ``benchmarks/results_real_depth.json`` and ``docs/BENCHMARKS_depth_real.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
for sub in ("SegmentationAI", "SurgicalDepth", ""):
    sys.path.insert(0, str(ROOT / sub))

from SurgicalAICore.errors import InputError  # noqa: E402
from SurgicalDepthLib.depth.metrics import depth_metrics  # noqa: E402
from SurgicalDepthLib.depth.loaders import load_depth_model  # noqa: E402
from SurgicalDepthLib.depth.sparse_eval import brightness_depth, constant_depth, evaluate_sparse  # noqa: E402
from SurgicalDepthLib.depth.temporal_eval import field_of_view_mask, pair_flows, sequence_consistency  # noqa: E402
from SurgicalDepthLib.synthetic.dataset import SyntheticDepthDataset  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def bench_jhu(models: dict, every: int) -> dict:
    root = SHARED / "endoscopy/jhu_sinus_dev"
    frames = root / "_start_002603_end_002984_stride_1000_segment_00"
    _, summary = evaluate_sparse({n: m.predict_batch for n, m in models.items()}, frames,
                                 root / "derived/sparse_depth_960x540.npz", frames / "undistorted_mask.png", every)
    return summary


def read_video(path: Path, count: int, size=(480, 270)) -> list:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < count:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(cv2.resize(bgr, size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB))
    cap.release()
    return frames


def bench_lap_video(models: dict, count: int) -> dict:
    frames = read_video(SHARED / "endoscopy/lap_video/endo.mp4", count)
    mask = field_of_view_mask(frames)
    flows = [pair_flows(frames[i], frames[i + 1]) for i in range(len(frames) - 1)]
    out = {}
    for name, model in models.items():
        depths = [d for i in range(0, len(frames), 8) for d in model.predict_batch(frames[i:i + 8])]
        out[name] = sequence_consistency(frames, depths, mask, flows)
    out["brightness"] = sequence_consistency(frames, [brightness_depth(f) for f in frames], mask, flows)
    out["constant"] = sequence_consistency(frames, [constant_depth(f) for f in frames], mask, flows)
    out["frames"] = len(frames)
    return out


def bench_synthetic(models: dict, dataset: str, split: str | None, max_frames: int) -> dict:
    data = SyntheticDepthDataset(dataset, split=split)
    if len(data) > max_frames:  # evenly spaced over all held-out paths
        data.rows = [data.rows[i] for i in np.linspace(0, len(data) - 1, max_frames).astype(int)]
    predictors = {n: m.predict_batch for n, m in models.items()}
    predictors["brightness"] = lambda fs: np.stack([brightness_depth(f) for f in fs])
    predictors["constant"] = lambda fs: np.stack([constant_depth(f) for f in fs])
    rows: dict = {n: [] for n in predictors}
    for start in range(0, len(data), 8):
        items = [data[i] for i in range(start, min(len(data), start + 8))]
        for name, predict in predictors.items():
            for it, pred in zip(items, predict([it["rgb"] for it in items]), strict=True):
                try:
                    rows[name].append(depth_metrics(pred, it["depth_mm"], it["valid"], 300.0, median_scaled=True))
                except InputError:  # a frame with no valid depth within the cap
                    continue
    return {n: {"frames": len(r), "abs_rel": float(np.mean([x["abs_rel"] for x in r])),
                "delta1": float(np.mean([x["delta1"] for x in r]))} for n, r in rows.items()} | {
        "dataset": dataset, "split": split}


def bench_speed(model, threads: int = 2, runs: int = 60) -> float:
    torch.set_num_threads(threads)
    frame = np.random.default_rng(0).integers(0, 255, (256, 320, 3), np.uint8)
    for _ in range(5):
        model.predict(frame)
    t = time.perf_counter()
    for _ in range(runs):
        model.predict(frame)
    fps = runs / (time.perf_counter() - t)
    torch.set_num_threads(1)
    return fps


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[], help="NAME=PATH (repeat)")
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--video-frames", type=int, default=100)
    parser.add_argument("--synthetic", help="rendered dataset whose val paths are held out")
    parser.add_argument("--heldout", help="rendered held-out scenario dataset (never trained on)")
    parser.add_argument("--max-frames", type=int, default=120, help="synthetic frames per set, evenly spaced")
    parser.add_argument("--json", default=str(ROOT / "benchmarks/results_real_depth.json"))
    parser.add_argument("--markdown", default=str(ROOT / "docs/BENCHMARKS_depth_real.md"))
    parser.add_argument("--from-json", help="only rewrite the markdown from an earlier run's JSON")
    args = parser.parse_args(argv)
    if args.from_json:
        Path(args.markdown).write_text(markdown(json.loads(Path(args.from_json).read_text())))
        return 0
    if not args.model:
        parser.error("name at least one --model NAME=PATH")
    torch.set_num_threads(1)
    models = {}
    for spec in args.model:
        name, _, path = spec.partition("=")
        models[name] = load_depth_model(path, "cpu")
    result = {"date": date.today().isoformat(), "machine": f"{platform.machine()}, {platform.python_version()}, "
              f"torch {torch.__version__}", "models": {s.partition('=')[0]: s.partition('=')[2] for s in args.model},
              "command": "python benchmarks/bench_real_depth.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    result["jhu_sinus_dev"] = bench_jhu(models, args.every)
    print(json.dumps(result["jhu_sinus_dev"], indent=1), flush=True)
    result["lap_video"] = bench_lap_video(models, args.video_frames)
    if args.synthetic:
        result["synthetic_val"] = bench_synthetic(models, args.synthetic, "val", args.max_frames)
    if args.heldout:
        result["synthetic_heldout"] = bench_synthetic(models, args.heldout, None, args.max_frames)
    result["speed_fps_256x320_2threads"] = {n: bench_speed(m) for n, m in models.items()}
    result["load_average_1min"] = round(os.getloadavg()[0], 1)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    Path(args.markdown).write_text(markdown(result))
    print(markdown(result))
    return 0


def markdown(r: dict) -> str:
    names = list(r["models"])
    methods = [*names, "brightness", "constant"]
    lines = ["# Depth on real endoscopic video (scale-free)", "",
             f"Measured {r['date']} on the development machine ({r['machine']}; 2 shared CPU cores, no GPU).",
             f"Command: `{r['command']}`", "",
             "Models: " + ", ".join(f"**{n}** = `{p}`" for n, p in r["models"].items()) + ".", "",
             "## jhu_sinus_dev: real sinus endoscopy against SfM sparse depth (every 10th frame)", "",
             "Per frame the prediction is sampled at the SfM points inside the field of view and aligned by the ratio "
             "of medians (median) or by least-squares scale and shift (lsq); Spearman needs no alignment. Means "
             "over frames.",
             "", "| method | AbsRel median | δ<1.25 median | RMSE-log median | AbsRel lsq | δ<1.25 lsq | Spearman |",
             "|---|---|---|---|---|---|---|"]
    for m in methods:
        s = r["jhu_sinus_dev"][m]
        lines.append(f"| {m} | {s['median_abs_rel']:.3f} | {s['median_delta1']:.3f} | {s['median_rmse_log']:.3f} | "
                     f"{s['lsq_abs_rel']:.3f} | {s['lsq_delta1']:.3f} | {s['spearman']:.3f} |")
    lv = r["lap_video"]
    lines += ["", f"## lap_video: temporal consistency ({lv['frames']} consecutive frames at 480x270)", "",
              "Mean relative difference of consecutive median-normalised depth maps: at the same pixel (flicker, "
              "includes real motion) and along forward-backward-consistent optical flow (the same tissue point). "
              "Lower is steadier; a constant map is 0 by construction, so read this beside the accuracy above.", "",
              "| method | flicker | along flow | tracked fraction |", "|---|---|---|---|"]
    for m in methods:
        s = lv[m]
        lines.append(f"| {m} | {s['flicker']:.4f} | {s['warped']:.4f} | {s['tracked_fraction']:.2f} |")
    for key, title in (("synthetic_val", "Synthetic held-out camera paths"),
                       ("synthetic_heldout", "Synthetic held-out scenario (never trained on)")):
        if key in r:
            s = r[key]
            lines += ["", f"## {title}: `{s['dataset']}`" + (f" split {s['split']}" if s["split"] else ""), "",
                      "| method | frames | AbsRel median-scaled | δ<1.25 median-scaled |", "|---|---|---|---|"]
            lines += [f"| {m} | {s[m]['frames']} | {s[m]['abs_rel']:.3f} | {s[m]['delta1']:.3f} |" for m in methods]
    lines += ["", "## Speed through the API, 256x320, 2 threads (same architecture for all models)", "",
              f"Measured at a 1-minute load average of {r.get('load_average_1min', '?')} on the 2 cores, at nice 10: "
              "only comparable within this run. The quiet-machine figure is in BENCHMARKS_depth.md.", "",
              "| model | frames/s |", "|---|---|"]
    lines += [f"| {n} | {v:.1f} |" for n, v in r["speed_fps_256x320_2threads"].items()]
    if r.get("notes"):
        lines += ["", "## Notes", "", *[f"- {n}" for n in r["notes"]]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
