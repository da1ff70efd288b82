"""Soak: N live frames through depth -> point cloud -> registration (frame tracker) -> overlay, in one scene.

Measures the process's resident memory (RSS) and the scene's node count every ``--every`` frames: a
leak shows as RSS growing past the warm-up level or nodes accumulating. The pass rule (issue 16):
RSS after warm-up stays within +-10 % and the node count never grows.

    python benchmarks/bench_soak.py --frames 10000 --json benchmarks/results_soak.json

The depth model is the bundled one (``--model`` for another); frames are a procedural moving scope
view so the run needs no data. Runs on CPU by default (``--device``).

Scenarios (``--scenario``):

- ``tracked`` (default): the registration target is the surface the depth model sees in frame 0; the view
  sways a few pixels about it, so the tracker follows (trusted frames: the transform node is updated),
  and every ``--jump-every``-th frame the view jumps away, the fit is lost and the global search runs.
- ``lost``: the target is a ball-and-box CT surface the procedural view never matches, so every frame
  is the worst case (local fit, then the global re-initialisation); about 4x slower per frame.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for sub in ("", "SegmentationAI", "SurgicalDepth"):
    sys.path.insert(0, str(ROOT / sub))


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def frame(i: int, h: int, w: int, shift: float | None = None) -> np.ndarray:
    """Procedural scope view; ``shift`` (pixels) places the texture, by default it drifts with ``i``."""
    yy, xx = np.mgrid[0:h, 0:w]
    dx, dy = (2.0 * i, float(i)) if shift is None else (shift, shift / 2)
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[..., 0] = (120 + 60 * np.sin((xx + dx) / 17.0)).astype(np.uint8)
    rgb[..., 1] = (90 + 40 * np.cos((yy - dy) / 13.0)).astype(np.uint8)
    rgb[..., 2] = 70
    return rgb


def target_and_structures():
    """A CT-like target: a ball and a box label map, as registration target and overlay surfaces."""
    from SurgicalAICore.mrml.segmentations import new_segmentation_node
    from SurgicalDepthLib.overlay.composite import structures_from_surfaces
    from SurgicalDepthLib.registration.target import segment_surfaces, target_from_segmentation

    k, j, i = np.mgrid[0:48, 0:48, 0:48].astype(float)
    lab = np.zeros((48, 48, 48), np.uint8)
    lab[np.sqrt((i - 24) ** 2 + (j - 24) ** 2 + (k - 24) ** 2) <= 14] = 1
    lab[32:42, 6:18, 28:44] = 2
    m = np.diag([1.5, 1.5, 1.5, 1.0])
    m[:3, 3] = -36.0
    node = new_segmentation_node(lab, m, [{"value": 1, "name": "ball", "color": [1, 0, 0]},
                                          {"value": 2, "name": "box", "color": [0, 1, 0]}], name="soak")
    return target_from_segmentation(node), structures_from_surfaces(segment_surfaces(node))


def seen_surface(depth_mm: np.ndarray, camera):
    """The depth map as a triangulated surface in the camera frame (the tracked scenario's target)."""
    import vtk
    from vtk.util.numpy_support import numpy_to_vtk

    from SurgicalDepthLib.camera.intrinsics import backproject

    h, w = depth_mm.shape
    grid = vtk.vtkPlaneSource()  # (w x h) points in row-major pixel order, like backproject's
    grid.SetResolution(w - 1, h - 1)
    triangles = vtk.vtkTriangleFilter()
    triangles.SetInputConnection(grid.GetOutputPort())
    triangles.Update()
    poly = triangles.GetOutput()
    points = vtk.vtkPoints()
    points.SetData(numpy_to_vtk(backproject(depth_mm, camera), deep=True))
    poly.SetPoints(points)
    return poly


def view_shift(n: int, jump_every: int) -> float:
    """Texture offset of frame ``n`` in the tracked scenario: a slow sway, and a jump every ``jump_every``."""
    if jump_every and n % jump_every == jump_every - 1:
        return 60.0
    return 3.0 * np.sin(2 * np.pi * n / 60.0)


def summarise(samples: list[dict], frames: int, meta: dict) -> dict:
    """Figures and the issue's pass rule from the samples so far (a stopped run keeps what it measured)."""
    warm = [s for s in samples if s["frame"] >= min(frames // 10, 500)] or samples
    base = warm[0]["rss_mib"]
    done = samples[-1]["frame"] + 1
    result = {**meta, "frames": frames, "frames_done": done, "complete": done == frames, "samples": samples,
              "rss_start_mib": samples[0]["rss_mib"], "rss_warm_mib": base, "warm_from_frame": warm[0]["frame"],
              "rss_end_mib": samples[-1]["rss_mib"], "rss_max_mib": max(s["rss_mib"] for s in samples),
              "rss_max_change_pct": round(100 * max(abs(s["rss_mib"] - base) for s in warm) / base, 2),
              "node_counts": sorted({s["nodes"] for s in samples}),
              "frames_per_s": round(done / max(samples[-1]["seconds"], 1e-9), 2),
              "machine": f"{platform.machine()} {platform.processor() or ''} python "
                         f"{platform.python_version()}, {os.cpu_count()} CPUs".strip(),
              "date": time.strftime("%Y-%m-%d")}
    result["pass"] = result["rss_max_change_pct"] <= 10 and len(result["node_counts"]) == 1
    return result


def soak(frames: int, every: int, device: str, model_path, size, scenario: str = "tracked",
         jump_every: int = 50, on_sample=None) -> dict:
    """Run the loop; ``on_sample(summary)`` is called at every sample with the figures so far."""
    from SurgicalAICore.mrml.scene import new_scene
    from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics
    from SurgicalDepthLib.depth.loaders import load_depth_model
    from SurgicalDepthLib.depth.pipeline import FrameProcessor
    from SurgicalDepthLib.depth.scene import LiveSceneOutput, camera_transform_node
    from SurgicalDepthLib.overlay.composite import overlay_frame, overlay_volume_node
    from SurgicalDepthLib.registration.target import target_from_polydata
    from SurgicalDepthLib.registration.tracking import FrameTracker
    from SurgicalDepthLib.video.sources import Frame

    h, w = size
    camera = CameraIntrinsics.from_fov(w, h, 70.0)
    processor = FrameProcessor(load_depth_model(model_path, device), camera, max_points=3000)
    target, structures = target_and_structures()
    pose = np.eye(4)
    if scenario == "tracked":
        first = processor.process(Frame(0, 0.0, frame(0, h, w, view_shift(0, jump_every)), "surface"))
        target = target_from_polydata(seen_surface(first.depth_mm, camera), "seen surface")
    else:
        pose[:3, 3] = [0.0, 0.0, -60.0]
    scene = new_scene()
    transform = camera_transform_node(scene)
    output = LiveSceneOutput(scene, transform_node=transform)
    tracker = FrameTracker(target, pose, transform_node=transform, max_points=1500, iterations=6, device=device,
                           global_budget_s=0.1)
    states: dict[str, int] = {}
    overlay_node, samples, start = None, [], time.perf_counter()
    for n in range(frames):
        shift = view_shift(n, jump_every) if scenario == "tracked" else None
        result = processor.process(Frame(n, n / 30.0, frame(n, h, w, shift), f"f{n:06d}"))
        output.update(result.rgb, result.depth_mm, result.poly)
        if len(result.cloud) >= 10:
            try:
                track = tracker.update(result.cloud.points)
                key = track.state + (" (searched)" if track.relocalised else "")
                states[key] = states.get(key, 0) + 1
            except Exception as error:
                if n == 0:
                    print(f"tracker refused frame 0: {error}", file=sys.stderr)
        rgb, _ = overlay_frame(result.rgb, structures, tracker.pose, camera)
        overlay_node = overlay_volume_node(scene, rgb, node=overlay_node)
        if n % every == 0 or n == frames - 1:
            samples.append({"frame": n, "rss_mib": round(rss_mib(), 1), "nodes": scene.GetNumberOfNodes(),
                            "seconds": round(time.perf_counter() - start, 1)})
            print(json.dumps(samples[-1]), flush=True)
            meta = {"size": [h, w], "device": device, "scenario": scenario, "tracker_states": dict(states)}
            if on_sample is not None:
                on_sample(summarise(samples, frames, meta))
    return summarise(samples, frames, meta)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10000)
    parser.add_argument("--every", type=int, default=250, help="sample RSS and nodes every N frames")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default=None, help="depth model folder (default: the bundled one)")
    parser.add_argument("--size", default="128x160", help="frame size HxW")
    parser.add_argument("--scenario", choices=("tracked", "lost"), default="tracked")
    parser.add_argument("--jump-every", type=int, default=50, help="tracked: a view jump (lost fit) every N frames")
    parser.add_argument("--json", default=None,
                        help="write the result here; rewritten at every sample, so a stopped run keeps its figures")
    args = parser.parse_args()
    h, w = (int(v) for v in args.size.split("x"))

    def save(result: dict) -> None:
        if args.json:
            from SurgicalAICore.atomic import write_json_atomic

            write_json_atomic(args.json, result)

    result = soak(args.frames, args.every, args.device, args.model, (h, w), args.scenario, args.jump_every, save)
    save(result)
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
