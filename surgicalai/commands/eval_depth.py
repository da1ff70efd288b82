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


def evaluate_to_folder(model_path, dataset_path, output=None, split=None, scenario=None, cap_mm=300.0,
                       max_frames=None, device="auto", overwrite=False, progress=None) -> dict:
    """Run the evaluation; write ``per_frame.csv`` + ``summary.json`` atomically when ``output`` is given."""
    import csv
    import json
    import os
    import shutil
    import tempfile
    from pathlib import Path

    import numpy as np

    from SurgicalAICore.errors import InputError

    from SurgicalDepthLib.depth.metrics import METRIC_NAMES, evaluate_estimator
    from SurgicalDepthLib.depth.loaders import load_depth_model
    from SurgicalDepthLib.synthetic.dataset import SyntheticDepthDataset

    if output is not None and Path(output).exists() and not overwrite:
        raise InputError(f"Output folder {output} already exists; choose another or allow overwriting.")
    if cap_mm <= 0:
        raise InputError("The depth cap must be positive.")
    estimator = load_depth_model(None if model_path in (None, "default") else model_path, device)
    data = SyntheticDepthDataset(dataset_path, split=split, scenarios=[scenario] if scenario else None)
    if max_frames is not None and len(data) > max_frames:
        keep = np.linspace(0, len(data) - 1, max_frames).astype(int)
        data.rows = [data.rows[i] for i in keep]
    rows = evaluate_estimator(estimator, data, cap_mm, progress)
    summary = {"model": str(model_path), "dataset": str(dataset_path), "split": split, "scenario": scenario,
               "cap_mm": cap_mm, "frames": len(rows), "is_metric": estimator.is_metric}
    for prefix in ("median", "metric"):
        summary[prefix] = {k: float(np.mean([r[f"{prefix}_{k}"] for r in rows])) for k in METRIC_NAMES}
    by_scenario = {}
    for name in sorted({r["scenario"] for r in rows}):
        sel = [r for r in rows if r["scenario"] == name]
        by_scenario[name] = {p: {k: float(np.mean([r[f"{p}_{k}"] for r in sel])) for k in METRIC_NAMES}
                             for p in ("median", "metric")}
        by_scenario[name]["frames"] = len(sel)
    summary["by_scenario"] = by_scenario
    if output is not None:
        out = Path(output)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-eval-", dir=out.parent))
        try:
            with open(tmp / "per_frame.csv", "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
                writer.writeheader()
                writer.writerows(rows)
            (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
            if out.exists():
                shutil.rmtree(out)
            os.replace(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return summary


def run(args: argparse.Namespace) -> int:
    import json

    from SurgicalAICore.progress import tqdm_callback

    summary = evaluate_to_folder(args.model, args.dataset, args.output, args.split, args.scenario, args.cap,
                                 args.max_frames, args.device, args.overwrite, progress=tqdm_callback("eval-depth"))
    print(json.dumps({k: summary[k] for k in ("frames", "median", "metric")}, indent=2))
    return 0
