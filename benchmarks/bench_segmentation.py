#!/usr/bin/env python
"""Segmentation speed and memory: our pipeline vs the same network under MONAI's default sliding window.

    python benchmarks/bench_segmentation.py --out docs/BENCHMARKS_segmentation.md

Cases (each in a fresh subprocess, so peak RSS is that case's own):
- the bundled sample CT (122x101x112, 3 mm) with TTA, without TTA, and the peer;
- a synthetic 512x512x300 CT (0.8x0.8x1 mm, ellipsoid organs) with TTA, without TTA, and the peer.
"Ours" is ``segment_image`` (resample, normalise, sliding window with Gaussian blending and 50 %
overlap, mirroring TTA as the card says, post-processing, back to the input grid). The peer runs
the same network on the same preprocessed input with ``monai.inferers.sliding_window_inference``
at its defaults (overlap 0.25, constant blending, no TTA), then arg-max and nearest-neighbour back
to the input grid. Times exclude imports and model loading (reported separately).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = ["sample_tta", "sample_notta", "sample_peer", "big_tta", "big_notta", "big_peer"]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def load_case_image(name: str):
    import SimpleITK as sitk

    if name.startswith("sample"):
        from SurgicalAICore.resources import sample_ct_path

        return sitk.ReadImage(str(sample_ct_path()))
    from SegmentationAILib.synthetic import synthetic_ct

    ct, _ = synthetic_ct((512, 512, 300), (0.8, 0.8, 1.0), noise_hu=10.0)
    return ct


def peer_segment(image, model):
    """The same network, MONAI sliding-window defaults, no TTA, no post-processing."""
    import numpy as np
    import SimpleITK as sitk
    import torch
    from monai.inferers import sliding_window_inference

    from SegmentationAILib.preprocessing import prepare_input, resample_like

    array, grid = prepare_input([image], model.card)
    roi = tuple(int(p) for p in reversed(model.card["patch_size"]))
    with torch.no_grad():
        logits = sliding_window_inference(torch.from_numpy(array)[None].to(model.device), roi, 1, model.network)
    labels = torch.argmax(logits, dim=1)[0].cpu().numpy().astype(np.uint8)
    out = sitk.GetImageFromArray(labels)
    out.CopyInformation(grid)
    return resample_like(out, image, sitk.sitkNearestNeighbor, 0)


def run_case(name: str, model_path: str, device: str) -> dict:
    """Runs in the subprocess: one case, JSON result."""
    import numpy as np
    import SimpleITK as sitk

    from SegmentationAILib.seg_model import load_segmentation_model
    from SegmentationAILib.segmenter import segment_image

    import torch

    rss_start = peak_rss_mb()
    t0 = time.perf_counter()
    model = load_segmentation_model(model_path or None, device=device)
    load_seconds = time.perf_counter() - t0
    image = load_case_image(name)
    rss_before = peak_rss_mb()
    t0 = time.perf_counter()
    if name.endswith("peer"):
        labels = peer_segment(image, model)
    else:
        labels = segment_image(image, model, {"tta": name.endswith("_tta"), "device": device})
    seconds = time.perf_counter() - t0
    result = {
        "case": name,
        "seconds": seconds,
        "model_load_seconds": load_seconds,
        "peak_rss_mb": peak_rss_mb(),
        "rss_before_run_mb": rss_before,
        "rss_after_imports_mb": rss_start,
        "size": list(image.GetSize()),
        "spacing": list(image.GetSpacing()),
        "threads": torch.get_num_threads(),
        "device": str(model.device),
    }
    array = sitk.GetArrayFromImage(labels)
    if name.startswith("sample"):
        from SegmentationAILib.sample_reference import sample_reference_labels
        from SegmentationAILib.statistics import dice_scores

        reference = sitk.GetArrayFromImage(sample_reference_labels())
        dice = dice_scores(array, reference, [e["value"] for e in model.labels])
        result["mean_dice_vs_reference"] = float(np.nanmean(list(dice.values())))
    else:
        from SegmentationAILib.synthetic import synthetic_ct  # noqa: F401 (labels are not those of the model)

        result["foreground_voxels"] = int(np.count_nonzero(array))
    return result


def run_all(args) -> list:
    results = []
    for name in args.cases:
        command = [sys.executable, __file__, "--case", name, "--device", args.device]
        if args.threads:
            command += ["--threads", str(args.threads)]
        if args.model:
            command += ["--model", args.model]
        print(f"running {name} ...", flush=True)
        proc = subprocess.run(command, check=False, capture_output=True, text=True, env=dict(os.environ))
        if proc.returncode != 0:
            print(proc.stderr[-2000:], file=sys.stderr)
            raise SystemExit(f"case {name} failed")
        line = [text for text in proc.stdout.splitlines() if text.startswith("{")][-1]
        result = json.loads(line)
        print(f"  {result['seconds']:.2f} s, peak RSS {result['peak_rss_mb']:.0f} MB", flush=True)
        results.append(result)
    return results


def verdict(by: dict, case: str, key: str, limit: float) -> str:
    if case not in by:
        return "not measured"
    return "met" if by[case][key] <= limit else "NOT met"


def report(results: list, args, load_before: tuple, load_after: tuple) -> str:
    by = {r["case"]: r for r in results}

    def ratio(a, b, key):
        return f"{by[a][key] / by[b][key]:.2f}" if a in by and b in by and by[b][key] else "n/a"

    lines = [
        "# Segmentation benchmark",
        "",
        f"- Date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Machine: {platform.machine()}, {os.cpu_count()} CPU cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM, no GPU; "
        f"Python {platform.python_version()}, torch threads {results[0]['threads'] if results else '?'}",
        f"- Command: `python benchmarks/bench_segmentation.py --out {args.out}"
        + (f" --model {args.model}" if args.model else "")
        + (f" --threads {args.threads}" if args.threads else "")
        + "`",
        f"- Model: {args.model or 'bundled abdomen-ct-unet'}",
        f"- Load average (1/5/15 min) before: {load_before[0]:.1f}/{load_before[1]:.1f}/{load_before[2]:.1f}, "
        f"after: {load_after[0]:.1f}/{load_after[1]:.1f}/{load_after[2]:.1f}. Other jobs shared the 2 cores "
        "during the run whenever the load is above 2, so the times are pessimistic.",
        "- Each case runs in its own process; time excludes imports and model loading; peak RSS is the "
        "process's maximum resident set (incl. torch/MONAI/VTK imports).",
        "",
        "| case | input | time (s) | peak RSS (MB) | mean Dice vs reference |",
        "|---|---|---:|---:|---:|",
    ]
    for r in results:
        dice = f"{r['mean_dice_vs_reference']:.3f}" if "mean_dice_vs_reference" in r else "—"
        size = "x".join(str(s) for s in r["size"])
        lines.append(f"| {r['case']} | {size} | {r['seconds']:.2f} | {r['peak_rss_mb']:.0f} | {dice} |")
    lines += [
        "",
        "Ratios (ours / peer; the peer is MONAI `sliding_window_inference` defaults with the same network):",
        "",
        f"- sample CT time: with TTA {ratio('sample_tta', 'sample_peer', 'seconds')}, "
        f"without TTA {ratio('sample_notta', 'sample_peer', 'seconds')}",
        f"- 512x512x300 time: with TTA {ratio('big_tta', 'big_peer', 'seconds')}, "
        f"without TTA {ratio('big_notta', 'big_peer', 'seconds')}",
        f"- 512x512x300 peak RSS: with TTA {ratio('big_tta', 'big_peer', 'peak_rss_mb')}",
        "",
        "Targets: sample CT with TTA ≤ 15 s: "
        + verdict(by, "sample_tta", "seconds", 15)
        + "; 512x512x300 with TTA ≤ 120 s: "
        + verdict(by, "big_tta", "seconds", 120)
        + "; ≤ 6 GB peak RSS: "
        + verdict(by, "big_tta", "peak_rss_mb", 6144)
        + ".",
        "",
        "Why ours costs more than the peer: 50 % overlap instead of 25 % (more windows), Gaussian weights, "
        "and mirroring TTA (one more pass per flip); post-processing (largest component, hole filling) is "
        "included in ours only. The 512x512x300 case is resampled to the model's 3 mm grid first, so the "
        "network sees about 137x137x100 voxels; the rest of its time is resampling and post-processing.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=CASES, help="(internal) run one case and print JSON")
    parser.add_argument("--cases", nargs="+", default=CASES, choices=CASES)
    parser.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="docs/BENCHMARKS_segmentation.md")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "SegmentationAI"))
    if args.case:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        print(json.dumps(run_case(args.case, args.model, args.device)))
        return
    load_before = os.getloadavg()
    results = run_all(args)
    load_after = os.getloadavg()
    text = report(results, args, load_before, load_after)
    out = ROOT / args.out if not Path(args.out).is_absolute() else Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
