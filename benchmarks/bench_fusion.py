"""Does fusing several frames before registering help? Single frame vs fused N frames vs Open3D's TSDF peer.

    nice -n 10 python benchmarks/bench_fusion.py [--frames 10] [--fuse 5,10] [--trials 4] \
        [--scenarios laparoscopy,sinus] [--pose-noise-deg 0.3] [--json benchmarks/results_fusion.json]

Frames are rendered along a camera path of each scenario (known poses). The depth of every frame is either
``noisy`` (the true depth with a smooth per-frame error field: gain, tilt and bowl up to 10 %, as the trust
calibration uses) or ``pred`` (the bundled network's prediction). The frames' relative camera motion is the
true one with a small random error per frame (``--pose-noise-deg`` degrees and as many mm; what tracking or
the video's structure from motion provides), and the whole set starts misaligned from the first frame's true
pose by 10 deg / 5 mm (the registration's job). Per trial and method, the same start:

- ``single``: the first frame's cloud alone (today's per-frame registration);
- ``fused N``: ``registration.fusion.fuse_clouds`` of the first N frames (1 mm cells) in the first camera's frame;
- ``fused N + scale``: the same with ``align_scale`` (each frame's depth scale fitted to the frames before it);
- ``open3d-tsdf N`` (peer): Open3D's TSDF volume integrating the same N depth maps with the same poses
  (1 mm voxels up to a 320-voxel cube, 4 mm truncation), its extracted surface points.

Each cloud is registered with the same ICP (similarity: the predicted and noisy depth carry a scale error) and
judged by the target registration error at the scenario's structure centroids. Writes the JSON and prints a
Markdown table for docs/BENCHMARKS_fusion.md.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for sub in ("SegmentationAI", "SurgicalDepth", ""):
    sys.path.insert(0, str(ROOT / sub))


def _jitter(rng: np.random.Generator, deg: float) -> np.ndarray:
    from SurgicalDepthLib.registration.shapes import perturbation

    return perturbation(deg, deg, np.zeros(3), rng) if deg > 0 else np.eye(4)


def relative_poses(setup, n: int, noise_deg: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Camera i -> camera 0, as a tracker would give them: the truth with a small error per frame."""
    inv0 = np.linalg.inv(setup.frames[0].pose)
    out = [np.eye(4)]
    for f in setup.frames[1:n]:
        out.append(_jitter(rng, noise_deg) @ inv0 @ f.pose)
    return out


def open3d_tsdf(depths, valids, rel_poses, clouds, camera, voxel_mm: float = 1.0, trunc_mm: float = 4.0) -> np.ndarray:
    """Open3D's TSDF integration of the depth maps (``UniformTSDFVolume`` over the clouds' bounding cube: the
    scalable volume of Open3D 0.20 extracted no surface here, even from a flat wall)."""
    import open3d as o3d

    placed = np.concatenate([c @ p[:3, :3].T + p[:3, 3] for c, p in zip(clouds, rel_poses, strict=True)])
    lo, hi = placed.min(0) - 4 * trunc_mm, placed.max(0) + 4 * trunc_mm
    length = float((hi - lo).max())
    resolution = int(min(320, np.ceil(length / voxel_mm)))
    volume = o3d.pipelines.integration.UniformTSDFVolume(
        length=length, resolution=resolution, sdf_trunc=trunc_mm,
        color_type=o3d.pipelines.integration.TSDFVolumeColorType.NoColor, origin=lo)
    intrinsic = o3d.camera.PinholeCameraIntrinsic(camera.width, camera.height, camera.fx, camera.fy,
                                                  camera.cx, camera.cy)
    for d, v, pose in zip(depths, valids, rel_poses, strict=True):
        depth = np.ascontiguousarray(np.where(v, d, 0.0).astype(np.float32))
        colour = np.zeros((*depth.shape, 3), np.uint8)
        rgbd = o3d.geometry.RGBDImage.create_from_color_and_depth(
            o3d.geometry.Image(colour), o3d.geometry.Image(depth), depth_scale=1.0,
            depth_trunc=float(depth.max()) + 1.0, convert_rgb_to_intensity=False)
        volume.integrate(rgbd, intrinsic, np.linalg.inv(pose))  # Open3D wants world (camera 0) -> camera
    return np.asarray(volume.extract_point_cloud().points)


def scenario_rows(name: str, args, model) -> list[dict]:
    from SurgicalDepthLib.registration.calibration import noisy_depth
    from SurgicalDepthLib.registration.evaluation import cloud_from_depth, prepare, tre_mm
    from SurgicalDepthLib.registration.fusion import fuse_clouds
    from SurgicalDepthLib.registration.tsdf import fuse_tsdf_clouds
    from SurgicalDepthLib.registration.icp import icp
    from SurgicalDepthLib.registration.shapes import apply, perturbation

    setup = prepare(name, n_frames=args.frames, seed=args.seed, depth_model=model,
                    frames_per_key=args.frames_per_key)
    rows = []
    for kind in ("noisy", "pred"):
        for trial in range(args.trials):
            rng = np.random.default_rng(1000 * trial + args.seed)
            depths = [noisy_depth(f.depth_true, rng) if kind == "noisy" else f.depth_pred for f in setup.frames]
            valids = [f.valid & np.isfinite(d) & (d > 0) for f, d in zip(setup.frames, depths, strict=True)]
            clouds = [cloud_from_depth(d, v, setup.camera, args.points, rng)
                      for d, v in zip(depths, valids, strict=True)]
            rel = relative_poses(setup, max(args.fuse), args.pose_noise_deg, rng)
            truth = setup.frames[0].pose
            start = perturbation(10.0, 5.0, apply(truth, clouds[0]).mean(0), rng) @ truth
            candidates = {"single": (clouds[0], 0.0)}
            for n in args.fuse:
                if not args.no_cells:
                    t0 = time.perf_counter()
                    fused = fuse_clouds(clouds[:n], rel[:n], voxel_mm=1.0).points
                    candidates[f"fused {n}"] = (fused, time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    fused = fuse_clouds(clouds[:n], rel[:n], voxel_mm=1.0, align_scale=True).points
                    candidates[f"fused {n} + scale"] = (fused, time.perf_counter() - t0)
                for label, kwargs in args.tsdf_settings:
                    t0 = time.perf_counter()
                    surface = fuse_tsdf_clouds(clouds[:n], rel[:n], **kwargs).points
                    candidates[f"tsdf {n}{label}"] = (surface, time.perf_counter() - t0)
                if not args.no_peer:
                    t0 = time.perf_counter()
                    peer = open3d_tsdf(depths[:n], valids[:n], rel[:n], clouds[:n], setup.camera)
                    candidates[f"open3d-tsdf {n}"] = (peer, time.perf_counter() - t0)
            for method, (cloud, fuse_s) in candidates.items():
                if len(cloud) > args.points:
                    cloud = cloud[rng.choice(len(cloud), args.points, replace=False)]
                result = icp(cloud, setup.target, start, scale=True)
                rows.append({"scenario": name, "depth": kind, "trial": trial, "method": method,
                             "points": len(cloud), "fuse_ms": 1000 * fuse_s,
                             "median_depth_mm": float(np.median(clouds[0][:, 2])),
                             "tre_mm": tre_mm(result.matrix, truth, setup.target_points),
                             "rms_mm": result.rms_mm, "scale": result.scale})
            print(f"{name} {kind} trial {trial}: " + ", ".join(
                f"{r['method']} {r['tre_mm']:.1f}" for r in rows[-len(candidates):]), flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| scenario | depth | method | points | fusion ms (median) | TRE median mm | TRE max mm | trials |",
             "|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["scenario"], r["depth"], r["method"]) for r in rows},
                  key=lambda k: (k[0], k[1], k[2] != "single", k[2].startswith("open3d"), k[2]))
    for s, d, m in keys:
        sel = [r for r in rows if (r["scenario"], r["depth"], r["method"]) == (s, d, m)]
        tre = [r["tre_mm"] for r in sel]
        lines.append(f"| {s} | {d} | {m} | {int(np.median([r['points'] for r in sel]))} | "
                     f"{np.median([r['fuse_ms'] for r in sel]):.0f} | {np.median(tre):.2f} | {max(tre):.2f} | "
                     f"{len(sel)} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default="laparoscopy,sinus")
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--frames-per-key", type=int, default=6)
    parser.add_argument("--fuse", default="5,10")
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--points", type=int, default=8000)
    parser.add_argument("--pose-noise-deg", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tsdf", default="",
                        help="extra settings of our TSDF, e.g. 'trunc_mm=4;voxel_mm=1,trunc_mm=8' (defaults always)")
    parser.add_argument("--no-cells", action="store_true", help="skip the cell-mean fusion rows")
    parser.add_argument("--no-peer", action="store_true", help="skip the Open3D TSDF peer")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results_fusion.json"))
    args = parser.parse_args()
    args.fuse = [int(n) for n in args.fuse.split(",")]
    args.tsdf_settings = [("", {})] + [
        (f" ({setting})", {k: float(v) for k, v in (kv.split("=") for kv in setting.split(";"))})
        for setting in args.tsdf.split(",") if setting]
    import torch

    torch.set_num_threads(1)
    from SurgicalDepthLib.depth.loaders import load_depth_model

    model = load_depth_model(device="cpu")
    started = time.time()
    rows = [r for name in args.scenarios.split(",") for r in scenario_rows(name, args, model)]
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, 1 torch thread, load {os.getloadavg()[0]:.1f}",
            "command": "python benchmarks/bench_fusion.py " + " ".join(sys.argv[1:]),
            "seconds": round(time.time() - started, 1)}
    Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    print(json.dumps(meta))
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
