"""Depth benchmark: speed of the compact depth network vs the Depth Anything V2 Small architecture,
renderer frames per second, and (optionally) accuracy of a depth model on synthetic datasets.

    python benchmarks/bench_depth.py [--threads 2] [--runs 20] [--model Resources/Models/endoscopy-depth]
        [--dataset /tmp/depth_work/train --split val] [--heldout /tmp/depth_work/heldout] [--json out.json]

The peer is the Depth Anything V2 Small *architecture* (ViT-S/14 + DPT head, about 25 M parameters) as
implemented by Hugging Face ``transformers`` with the published Small configuration, instantiated with
random weights (weights do not change speed), run at the nearest multiple-of-14 input (252x322 for
256x320), in the same process, same threads.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
for sub in ("SegmentationAI", "SurgicalDepth"):
    sys.path.insert(0, str(ROOT / sub))


# --------------------------------------------------------------------- Depth Anything V2 Small (peer)
def depth_anything_v2_small() -> nn.Module:
    """The Depth Anything V2 Small architecture as implemented in Hugging Face ``transformers``
    (DINOv2 ViT-S/14 backbone: width 384, 12 layers, 6 heads, features of layers 3/6/9/12; DPT neck
    [48, 96, 192, 384], fusion 64, head 32), the configuration of the published
    ``Depth-Anything-V2-Small-hf`` model, with random weights: nothing is downloaded and weights do
    not change speed."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    backbone = Dinov2Config(
        hidden_size=384,
        num_hidden_layers=12,
        num_attention_heads=6,
        mlp_ratio=4,
        patch_size=14,
        image_size=518,
        out_indices=[3, 6, 9, 12],
        reshape_hidden_states=False,
        apply_layernorm=True,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=384,
        patch_size=14,
        neck_hidden_sizes=[48, 96, 192, 384],
        fusion_hidden_size=64,
        head_hidden_size=32,
        depth_estimation_type="relative",
    )

    class Peer(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = DepthAnythingForDepthEstimation(config)

        def forward(self, x):
            return self.model(pixel_values=x).predicted_depth

    return Peer()


# --------------------------------------------------------------------------------- measurements
def time_model(model, shape, runs: int, warmup: int = 3) -> float:
    """Median seconds per forward pass."""
    x = torch.randn(*shape)
    times = []
    with torch.inference_mode():
        for i in range(warmup + runs):
            t = time.perf_counter()
            model(x)
            if i >= warmup:
                times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_networks(threads: int, runs: int, h: int = 256, w: int = 320) -> dict:
    from SurgicalDepthLib.depth.loaders import load_depth_model
    from SurgicalDepthLib.depth.network import build_depth_network, count_macs, count_parameters

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    ours = build_depth_network().eval()
    peer = depth_anything_v2_small().eval()
    ph, pw = round(h / 14) * 14, round(w / 14) * 14
    out = {
        "threads": threads,
        "input": [h, w],
        "peer_input": [ph, pw],
        "ours_params": count_parameters(ours),
        "peer_params": sum(p.numel() for p in peer.parameters()),
        "ours_gmacs": count_macs(ours, h, w) / 1e9,
    }
    out["ours_s"] = time_model(ours, (1, 3, h, w), runs)
    out["peer_s"] = time_model(peer, (1, 3, ph, pw), max(3, runs // 4))
    # end to end through the user-facing API (resize, normalise, predict, resize back)
    est = load_depth_model(None, "cpu")
    frame = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    for _ in range(3):
        est.predict(frame)
    t = time.perf_counter()
    for _ in range(runs):
        est.predict(frame)
    out["api_s"] = (time.perf_counter() - t) / runs
    out["ours_fps"] = 1.0 / out["ours_s"]
    out["peer_fps"] = 1.0 / out["peer_s"]
    out["api_fps"] = 1.0 / out["api_s"]
    out["speedup"] = out["peer_s"] / out["ours_s"]
    return out


def bench_renderer(frames: int) -> dict:
    from SurgicalDepthLib.synthetic.camera_paths import PosePlanner
    from SurgicalDepthLib.synthetic.renderer import SurfaceRenderer
    from SurgicalDepthLib.synthetic.dataset import default_camera
    from SurgicalDepthLib.synthetic.catalog import load_scenario

    scenario = load_scenario("laparoscopy")
    camera = default_camera(256, 320)
    renderer = SurfaceRenderer(scenario, camera)
    planner = PosePlanner(scenario, camera, renderer)
    rng = np.random.default_rng(0)
    poses = [planner.random_pose(rng)[0] for _ in range(frames)]
    renderer.render(poses[0], seed=0)
    t = time.perf_counter()
    for i, pose in enumerate(poses):
        renderer.render(pose, seed=i)
    full = (time.perf_counter() - t) / frames
    t = time.perf_counter()
    for pose in poses:
        renderer.render_geometry(pose)
    geometry = (time.perf_counter() - t) / frames
    return {
        "scenario": "laparoscopy",
        "triangles": sum(s.polydata.GetNumberOfPolys() for s in scenario.structures),
        "render_fps": 1.0 / full,
        "geometry_fps": 1.0 / geometry,
    }


def bench_accuracy(model, dataset, split, heldout) -> dict:
    sys.path.insert(0, str(ROOT))
    from SurgicalDepthLib.depth.evaluation import evaluate_to_folder

    out = {}
    if dataset:
        out["val_paths"] = evaluate_to_folder(model, dataset, split=split)
    if heldout:
        out["heldout_scenario"] = evaluate_to_folder(model, heldout)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--render-frames", type=int, default=20)
    parser.add_argument("--model", default="default")
    parser.add_argument("--dataset")
    parser.add_argument("--split", default="val")
    parser.add_argument("--heldout")
    parser.add_argument("--json")
    parser.add_argument(
        "--out", default=str(ROOT / "docs" / "BENCHMARKS_depth.md"), help="markdown report ('' for none)"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average": os.getloadavg(),
        "torch": torch.__version__,
        "networks": [bench_networks(t, args.runs) for t in args.threads],
    }
    for r in result["networks"]:
        print(
            f"threads={r['threads']}: ours {r['ours_fps']:.1f} fps ({r['ours_params'] / 1e6:.2f} M params, "
            f"{r['ours_gmacs']:.2f} GMAC), API {r['api_fps']:.1f} fps; Depth Anything V2 Small arch "
            f"{r['peer_fps']:.2f} fps at {r['peer_input'][0]}x{r['peer_input'][1]} "
            f"({r['peer_params'] / 1e6:.1f} M params); speed-up x{r['speedup']:.1f}",
            flush=True,
        )
    result["renderer"] = bench_renderer(args.render_frames)
    print(
        f"renderer (laparoscopy, 256x320): {result['renderer']['render_fps']:.1f} fps shaded, "
        f"{result['renderer']['geometry_fps']:.1f} fps depth only",
        flush=True,
    )
    if args.dataset or args.heldout:
        result["accuracy"] = bench_accuracy(args.model, args.dataset, args.split, args.heldout)
        for name, s in result["accuracy"].items():
            print(
                f"{name}: frames {s['frames']} median-scaled AbsRel {s['median']['abs_rel']:.4f} "
                f"delta1 {s['median']['delta1']:.4f} | metric AbsRel {s['metric']['abs_rel']:.4f} "
                f"delta1 {s['metric']['delta1']:.4f}",
                flush=True,
            )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=float) + "\n")
    if args.out:
        print(f"wrote {write_markdown(result, Path(args.out), args)}")
    return 0


def write_markdown(result: dict, path: Path, args) -> Path:
    import platform

    lines = [
        "# Depth benchmark (SurgicalDepth network and renderer)",
        "",
        f"- Date: {result['date']}; machine: {platform.machine()}, {os.cpu_count()} CPU cores, no GPU; "
        f"torch {result['torch']}; 1-minute load average at the start {result['load_average'][0]:.1f}.",
        f"- Command: `python benchmarks/bench_depth.py {' '.join(sys.argv[1:])}`",
        "- Peer: the Depth Anything V2 Small architecture (Hugging Face `transformers` implementation, published "
        "Small configuration, random weights), same process and threads, at 252x322 (the nearest multiple of 14).",
        "",
        "## Speed at 256x320, batch 1 (median of repeated forward passes)",
        "",
        "| torch threads | ours fps | ours ms | parameters | GMAC | through the API (resize, normalise) fps | "
        "Depth Anything V2 Small fps | its parameters | speed-up |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["networks"]:
        lines.append(
            f"| {r['threads']} | {r['ours_fps']:.1f} | {1000 * r['ours_s']:.1f} | {r['ours_params'] / 1e6:.2f} M | "
            f"{r['ours_gmacs']:.2f} | {r['api_fps']:.1f} | {r['peer_fps']:.2f} | {r['peer_params'] / 1e6:.1f} M | "
            f"**{r['speedup']:.1f}x** |"
        )
    rr = result["renderer"]
    lines += [
        "",
        "Targets: >= 30 fps on 2 threads, >= 8x faster than the peer.",
        "",
        "## Renderer (VTK offscreen, EGL)",
        "",
        f"- {rr['scenario']} scenario ({rr['triangles']} triangles), 256x320: **{rr['render_fps']:.1f} fps** "
        f"shaded (RGB + depth + shading, textures, lens effects), {rr['geometry_fps']:.1f} fps depth only.",
        "",
    ]
    for name, s in result.get("accuracy", {}).items():
        title = {
            "val_paths": "Held-out camera paths of the training scenarios (split `val`)",
            "heldout_scenario": "Held-out scenario (never trained on)",
        }.get(name, name)
        lines += [
            f"## Accuracy: {title}",
            "",
            f"Dataset `{s['dataset']}`, {s['frames']} frames, depth cap {s['cap_mm']:g} mm.",
            "",
            "| scenario | frames | protocol | AbsRel | SqRel | RMSE mm | RMSElog | d<1.25 | d<1.25^2 | d<1.25^3 |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        groups = [
            *list(s.get("by_scenario", {}).items()),
            ("**all**", {**{k: s[k] for k in ("median", "metric")}, "frames": s["frames"]}),
        ]
        for scen, m in groups:
            for proto in ("median", "metric"):
                v = m[proto]
                lines.append(
                    f"| {scen} | {m['frames']} | {'median-scaled' if proto == 'median' else 'metric'} | "
                    f"{v['abs_rel']:.3f} | {v['sq_rel']:.3f} | {v['rmse_mm']:.2f} | {v['rmse_log']:.3f} | "
                    f"{v['delta1']:.3f} | {v['delta2']:.3f} | {v['delta3']:.3f} |"
                )
        lines.append("")
    lines += [
        "Targets on held-out synthetic frames: median-scaled AbsRel <= 0.05 and d<1.25 >= 0.97; metric AbsRel <= 0.08.",
        "",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


if __name__ == "__main__":
    sys.exit(main())
