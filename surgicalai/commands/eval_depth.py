"""``surgicalai eval-depth MODEL DATASET``: depth metrics per frame (CSV) and summary (JSON)."""
from __future__ import annotations

import argparse

HELP = "evaluate a depth model on a synthetic depth dataset (median-scaled and metric)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="depth model folder or TorchScript file ('default' = bundled model)")
    parser.add_argument("dataset", help="dataset folder written by 'surgicalai render'")
    parser.add_argument("-o", "--output", help="folder for per_frame.csv and summary.json (default: print only)")
    parser.add_argument("--split", help="only this split (train/val)")
    parser.add_argument("--scenario", help="only this scenario")
    parser.add_argument("--cap", type=float, default=300.0, help="depth cap in mm")
    parser.add_argument("--max-frames", type=int, help="evaluate evenly spaced frames only")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--overwrite", action="store_true")


def run(args: argparse.Namespace) -> int:
    import json

    from SurgicalAICore.progress import tqdm_callback
    from SurgicalDepthLib.depth.evaluation import evaluate_to_folder

    summary = evaluate_to_folder(args.model, args.dataset, args.output, args.split, args.scenario, args.cap,
                                 args.max_frames, args.device, args.overwrite, progress=tqdm_callback("eval-depth"))
    print(json.dumps({k: summary[k] for k in ("frames", "median", "metric")}, indent=2))
    return 0
