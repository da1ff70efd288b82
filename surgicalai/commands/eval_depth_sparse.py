"""``surgicalai eval-depth-sparse MODEL FRAMES REFS.npz``: scale-free depth scores on real video.

Scores the model and, in the same run, the constant-depth and brightness (1/sqrt(I)) baselines
against sparse per-frame references (``[u, v, z]`` rows, e.g. SfM points): median-scaled and
least-squares scale-and-shift AbsRel, delta<1.25, RMSE-log, and Spearman's rank correlation.
"""
from __future__ import annotations

import argparse

HELP = "score a depth model on real frames against sparse references (SfM points), scale-free, with baselines"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="depth model folder or TorchScript file ('default' = bundled model)")
    parser.add_argument("frames", help="folder of frames named by number (e.g. 00002700.jpg)")
    parser.add_argument("references", help=".npz: frame id -> float [u, v, z] rows in the frames' pixels")
    parser.add_argument("--mask", help="field-of-view mask image (> 127 valid), the frames' size")
    parser.add_argument("--every", type=int, default=1, help="evaluate every N-th reference frame")
    parser.add_argument("-o", "--output", help="folder for per_frame.csv and summary.json (default: print only)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--overwrite", action="store_true")


def evaluate_sparse_to_folder(model_path, frames, references, mask=None, every=1, output=None, device="auto",
                              overwrite=False, progress=None) -> dict:
    """Run :func:`evaluate_sparse` for one model; write the results atomically when ``output`` is given."""
    from pathlib import Path

    from SurgicalAICore.errors import InputError

    from SurgicalDepthLib.depth.loaders import load_depth_model
    from SurgicalDepthLib.depth.sparse_eval import evaluate_sparse

    if output is not None and Path(output).exists() and not overwrite:
        raise InputError(f"Output folder {output} already exists; choose another or allow overwriting.")
    estimator = load_depth_model(None if model_path in (None, "default") else model_path, device)
    rows, summary = evaluate_sparse({"model": estimator.predict_batch}, frames, references, mask, every, progress)
    result = {"model": str(model_path), "frames": str(frames), "references": str(references), "every": every,
              "methods": summary}
    if output is not None:
        write_results(Path(output), rows, result)
    return result


def write_results(out, rows, summary) -> None:
    """per_frame.csv + summary.json into a temporary folder, moved into place last."""
    import csv
    import json

    from SurgicalAICore.atomic import atomic_dir

    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(out, replace=True) as tmp:  # an earlier result is swapped out only once this one is whole
        with open(tmp / "per_frame.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
            writer.writeheader()
            writer.writerows(rows)
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


def run(args: argparse.Namespace) -> int:
    import json

    from SurgicalAICore.progress import tqdm_callback

    result = evaluate_sparse_to_folder(args.model, args.frames, args.references, args.mask, args.every, args.output,
                                       args.device, args.overwrite, progress=tqdm_callback("eval-depth-sparse"))
    print(json.dumps(result["methods"], indent=2))
    return 0
