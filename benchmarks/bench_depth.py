"""Depth benchmark: speed of the compact depth network vs the Depth Anything V2 Small architecture,
renderer frames per second, and (optionally) accuracy of a depth model on synthetic datasets.

    python benchmarks/bench_depth.py [--threads 2] [--runs 20] [--model Resources/Models/endoscopy-depth]
        [--dataset /tmp/depth_work/train --split val] [--heldout /tmp/depth_work/heldout] [--json out.json]

The peer is Depth Anything V2 Small *architecture* (ViT-S/14: width 384, 12 blocks, 6 heads; DPT
head with 64 features and [48, 96, 192, 384] reassemble channels), written here from its paper and
published configuration, instantiated with random weights (weights do not change speed), run at the
nearest multiple-of-14 input (252x322 for 256x320), in the same process, same threads.
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
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
for sub in ("SegmentationAI", "SurgicalDepth"):
    sys.path.insert(0, str(ROOT / sub))


# --------------------------------------------------------------------- Depth Anything V2 Small (peer)
class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(b, n, c))


class ViTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: int = 4):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.ls1 = nn.Parameter(torch.ones(dim))
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * mlp_ratio), nn.GELU(), nn.Linear(dim * mlp_ratio, dim))
        self.ls2 = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        x = x + self.ls1 * self.attn(self.norm1(x))
        return x + self.ls2 * self.mlp(self.norm2(x))


class ResidualConvUnit(nn.Module):
    def __init__(self, features: int):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class FusionBlock(nn.Module):
    def __init__(self, features: int, with_skip: bool):
        super().__init__()
        self.res1 = ResidualConvUnit(features) if with_skip else None
        self.res2 = ResidualConvUnit(features)
        self.out = nn.Conv2d(features, features, 1)

    def forward(self, x, skip=None, size=None):
        if skip is not None and self.res1 is not None:
            x = x + self.res1(skip)
        x = self.res2(x)
        x = F.interpolate(x, size=size, scale_factor=None if size else 2.0, mode="bilinear", align_corners=True)
        return self.out(x)


class DepthAnythingV2Small(nn.Module):
    """ViT-S/14 encoder + DPT decoder, the shape of Depth Anything V2 Small (about 25 M parameters)."""

    def __init__(self, dim=384, depth=12, heads=6, features=64, out_channels=(48, 96, 192, 384),
                 layers=(2, 5, 8, 11), patch=14):
        super().__init__()
        self.patch, self.layers = patch, layers
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + 37 * 37, dim))  # 518x518 grid, interpolated per input
        self.blocks = nn.ModuleList([ViTBlock(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.projects = nn.ModuleList([nn.Conv2d(dim, c, 1) for c in out_channels])
        self.resize = nn.ModuleList([nn.ConvTranspose2d(out_channels[0], out_channels[0], 4, 4),
                                     nn.ConvTranspose2d(out_channels[1], out_channels[1], 2, 2),
                                     nn.Identity(), nn.Conv2d(out_channels[3], out_channels[3], 3, 2, 1)])
        self.layer_rn = nn.ModuleList([nn.Conv2d(c, features, 3, padding=1, bias=False) for c in out_channels])
        self.refine = nn.ModuleList([FusionBlock(features, i != 3) for i in range(4)])
        self.head1 = nn.Conv2d(features, features // 2, 3, padding=1)
        self.head2 = nn.Sequential(nn.Conv2d(features // 2, 32, 3, padding=1), nn.ReLU(True), nn.Conv2d(32, 1, 1),
                                   nn.ReLU(True))

    def forward(self, x):
        b, _, h, w = x.shape
        ph, pw = h // self.patch, w // self.patch
        t = self.patch_embed(x).flatten(2).transpose(1, 2)
        pos = self.pos_embed[:, 1:].reshape(1, 37, 37, -1).permute(0, 3, 1, 2)
        pos = F.interpolate(pos, size=(ph, pw), mode="bicubic", align_corners=False).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls_token.expand(b, -1, -1) + self.pos_embed[:, :1], t + pos], dim=1)
        feats = []
        for i, blk in enumerate(self.blocks):
            t = blk(t)
            if i in self.layers:
                feats.append(self.norm(t)[:, 1:].transpose(1, 2).reshape(b, -1, ph, pw))
        maps = [self.layer_rn[i](self.resize[i](self.projects[i](f))) for i, f in enumerate(feats)]
        y = self.refine[3](maps[3], size=maps[2].shape[-2:])
        y = self.refine[2](y, maps[2], size=maps[1].shape[-2:])
        y = self.refine[1](y, maps[1], size=maps[0].shape[-2:])
        y = self.refine[0](y, maps[0])
        y = F.interpolate(self.head1(y), size=(ph * self.patch, pw * self.patch), mode="bilinear", align_corners=True)
        return self.head2(y)


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
    from SurgicalDepthLib.depth_model import load_depth_model
    from SurgicalDepthLib.depth_network import build_depth_network, count_macs, count_parameters

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    ours = build_depth_network().eval()
    peer = DepthAnythingV2Small().eval()
    ph, pw = round(h / 14) * 14, round(w / 14) * 14
    out = {"threads": threads, "input": [h, w], "peer_input": [ph, pw],
           "ours_params": count_parameters(ours), "peer_params": sum(p.numel() for p in peer.parameters()),
           "ours_gmacs": count_macs(ours, h, w) / 1e9}
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
    from SurgicalDepthLib.camera_paths import PosePlanner
    from SurgicalDepthLib.renderer import SurfaceRenderer
    from SurgicalDepthLib.synthetic_dataset import default_camera
    from SurgicalDepthLib.synthetic_scene import load_scenario

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
    return {"scenario": "laparoscopy", "triangles": sum(s.polydata.GetNumberOfPolys() for s in scenario.structures),
            "render_fps": 1.0 / full, "geometry_fps": 1.0 / geometry}


def bench_accuracy(model, dataset, split, heldout) -> dict:
    sys.path.insert(0, str(ROOT))
    from SurgicalDepthLib.cli_eval_depth import evaluate_to_folder

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
    args = parser.parse_args(argv)
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_average": os.getloadavg(),
              "torch": torch.__version__, "networks": [bench_networks(t, args.runs) for t in args.threads]}
    for r in result["networks"]:
        print(f"threads={r['threads']}: ours {r['ours_fps']:.1f} fps ({r['ours_params'] / 1e6:.2f} M params, "
              f"{r['ours_gmacs']:.2f} GMAC), API {r['api_fps']:.1f} fps; Depth Anything V2 Small arch "
              f"{r['peer_fps']:.2f} fps at {r['peer_input'][0]}x{r['peer_input'][1]} "
              f"({r['peer_params'] / 1e6:.1f} M params); speed-up x{r['speedup']:.1f}", flush=True)
    result["renderer"] = bench_renderer(args.render_frames)
    print(f"renderer (laparoscopy, 256x320): {result['renderer']['render_fps']:.1f} fps shaded, "
          f"{result['renderer']['geometry_fps']:.1f} fps depth only", flush=True)
    if args.dataset or args.heldout:
        result["accuracy"] = bench_accuracy(args.model, args.dataset, args.split, args.heldout)
        for name, s in result["accuracy"].items():
            print(f"{name}: frames {s['frames']} median-scaled AbsRel {s['median']['abs_rel']:.4f} "
                  f"delta1 {s['median']['delta1']:.4f} | metric AbsRel {s['metric']['abs_rel']:.4f} "
                  f"delta1 {s['metric']['delta1']:.4f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
