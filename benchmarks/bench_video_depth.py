"""Benchmark: video frame -> depth -> point cloud in the MRML scene, at 256x320 on 2 CPU threads.

    python benchmarks/bench_video_depth.py                    # everything, writes docs/BENCHMARKS_video.md
    python benchmarks/bench_video_depth.py --memory-frames 2000 --live-seconds 8   # shorter

Parts:
1. Per-stage latency (read, prep, infer, cloud, scene) and frame -> cloud-in-scene time for the bundled
   depth network and a tiny network (same architecture, 4-8 channels), frames processed one by one.
2. Live: a 30 fps procedural stream for N seconds through LiveProcessor (newest frame wins) and, as
   the peer, a FIFO queue that processes every frame: achieved fps, frame-to-scene latency, drops.
3. Memory: RSS over 10 000 procedural frames through the whole live path (source, prep, depth,
   cloud, scene update); flat means last/first within +-10 %.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import platform
import queue
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for sub in ("SegmentationAI", "SurgicalDepth", ""):
    sys.path.insert(0, str(ROOT / sub))

H, W = 256, 320


CLI_SECTION = "## 4. `surgicalai depth`"


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


class ProceduralVideo:
    """Endoscope-like frames made on the fly (field stop, moving texture, highlights): nothing stored."""

    def __init__(self, h=H, w=W, seed=0):
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        self.xx, self.yy = xx, yy
        self.stop = np.hypot(xx - w / 2, yy - h / 2) > 0.62 * np.hypot(w / 2, h / 2) * 0.85
        self.rng = np.random.default_rng(seed)

    def frame(self, i: int) -> np.ndarray:
        t = i * 0.07
        r = 150 + 60 * np.sin(self.xx / 23.0 + t) * np.cos(self.yy / 31.0 - 0.5 * t)
        g = 80 + 30 * np.sin(self.xx / 11.0 - t)
        b = 70 + 20 * np.cos(self.yy / 13.0 + t)
        rgb = np.stack([r, g, b], axis=2).clip(0, 255).astype(np.uint8)
        cy, cx = int(H / 2 + 60 * np.sin(t)), int(W / 2 + 80 * np.cos(t))
        rgb[max(cy - 3, 0) : cy + 3, max(cx - 3, 0) : cx + 3] = 255  # a specular highlight
        rgb[self.stop] = 0
        return rgb


class ProceduralDepth:
    """Depth without a network (a smooth surface): isolates the pipeline's own cost and memory."""

    card = {}

    def predict(self, rgb):
        h, w = rgb.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w]
        return (60.0 + 10.0 * np.sin(xx / 40.0) + 0.05 * yy).astype(np.float32)


def tiny_model(folder: Path):
    import torch

    from SurgicalDepthLib.depth.model import depth_card, save_depth_model
    from SurgicalDepthLib.depth.loaders import load_depth_model
    from SurgicalDepthLib.depth.network import build_depth_network

    torch.manual_seed(0)
    net = build_depth_network({"channels": [4, 4, 8, 8, 8], "blocks": [0, 0, 0, 0, 0]})
    save_depth_model(folder, net, depth_card("tiny-bench", net, input_size=(H, W)), overwrite=True)
    return load_depth_model(folder, "cpu")


def stage_latency(model, n: int, scene_name: str):
    from SurgicalAICore.mrml.scene import new_scene
    from SurgicalDepthLib.depth.pipeline import FrameProcessor
    from SurgicalDepthLib.depth.scene import LiveSceneOutput
    from SurgicalDepthLib.video.sources import Frame

    video = ProceduralVideo()
    scene = new_scene()
    out = LiveSceneOutput(scene, scene_name)
    proc = FrameProcessor(model, None, max_points=20000)
    rows = []
    for i in range(n + 3):
        c0 = time.process_time()
        t0 = time.perf_counter()
        rgb = video.frame(i)
        read = time.perf_counter() - t0
        r = proc.process(Frame(i, i / 30, rgb, f"f{i}", read))
        t1 = time.perf_counter()
        out.update(r.rgb, r.depth_mm, r.poly)
        scene_s = time.perf_counter() - t1
        if i >= 3:  # warm-up
            rows.append(
                [
                    r.timings["read"],
                    r.timings["prep"],
                    r.timings["infer"],
                    r.timings["cloud"],
                    scene_s,
                    time.perf_counter() - t0,
                    time.process_time() - c0,
                ]
            )
    a = 1000 * np.array(rows)
    return {
        "read": np.median(a[:, 0]),
        "prep": np.median(a[:, 1]),
        "infer": np.median(a[:, 2]),
        "cloud": np.median(a[:, 3]),
        "scene": np.median(a[:, 4]),
        "total": np.median(a[:, 5]),
        "p95_total": np.percentile(a[:, 5], 95),
        "fps": 1000.0 / np.mean(a[:, 5]),
        "cpu": np.median(a[:, 6]),
    }


class StreamSource:
    """A live source fed by a 30 fps producer thread (as OpenIGTLink would)."""

    def __init__(self, fps=30.0, seconds=10.0):
        from SurgicalDepthLib.video.sources import LiveSource

        self.live = LiveSource("stream")
        self.fps, self.seconds = fps, seconds
        self.video = ProceduralVideo()
        self.sent = {}

    def run(self, sink):
        period = 1.0 / self.fps
        start = time.perf_counter()
        i = 0
        while time.perf_counter() - start < self.seconds:
            rgb = self.video.frame(i)
            rgb[0, 0, :] = (i % 256, (i // 256) % 256, 7)  # frame id, to match latency
            self.sent[i] = time.perf_counter()
            sink(rgb, i)
            i += 1
            wait = start + i * period - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        return i


def live_newest_wins(model, seconds):
    from SurgicalAICore.mrml.scene import new_scene
    from SurgicalDepthLib.depth.pipeline import FrameProcessor
    from SurgicalDepthLib.depth.scene import LiveSceneOutput
    from SurgicalDepthLib.depth.live import LiveProcessor

    stream = StreamSource(seconds=seconds)
    scene = new_scene()
    out = LiveSceneOutput(scene, "live")
    live = LiveProcessor(stream.live, FrameProcessor(model, None, 20000))
    live.start()
    latencies = []
    producer = threading.Thread(target=lambda: stream.run(lambda rgb, i: stream.live._offer(rgb)))
    producer.start()
    while producer.is_alive():
        r = live.apply(out)  # the "GUI thread"
        if r is not None:
            fid = int(r.rgb[0, 0, 0]) + 256 * int(r.rgb[0, 0, 1])
            latencies.append(time.perf_counter() - stream.sent[fid])
        time.sleep(0.005)
    live.stop()
    stats = live.stats()
    n_sent = len(stream.sent)
    lat = 1000 * np.array(latencies)
    return {
        "sent": n_sent,
        "shown": len(latencies),
        "fps": len(latencies) / seconds,
        "lat_median": np.median(lat),
        "lat_p95": np.percentile(lat, 95),
        "lat_last": lat[-1],
        "dropped": stats.dropped_frames,
    }


def live_fifo_peer(model, seconds):
    """The naive alternative: queue every frame and process them in order."""
    from SurgicalAICore.mrml.scene import new_scene
    from SurgicalDepthLib.depth.pipeline import FrameProcessor
    from SurgicalDepthLib.depth.scene import LiveSceneOutput
    from SurgicalDepthLib.video.sources import Frame

    stream = StreamSource(seconds=seconds)
    q: queue.Queue = queue.Queue()
    proc = FrameProcessor(model, None, 20000)
    results: queue.Queue = queue.Queue()
    stop = threading.Event()

    def worker():
        while not stop.is_set():
            try:
                rgb, i = q.get(timeout=0.05)
            except queue.Empty:
                continue
            results.put((proc.process(Frame(i, 0.0, rgb, str(i))), i))

    threading.Thread(target=worker, daemon=True).start()
    scene = new_scene()
    out = LiveSceneOutput(scene, "fifo")
    producer = threading.Thread(target=lambda: stream.run(lambda rgb, i: q.put((rgb, i))))
    producer.start()
    latencies, peak_queue = [], 0
    while producer.is_alive():
        peak_queue = max(peak_queue, q.qsize())
        try:
            r, i = results.get(timeout=0.005)
        except queue.Empty:
            continue
        out.update(r.rgb, r.depth_mm, r.poly)
        latencies.append(time.perf_counter() - stream.sent[i])
    stop.set()
    lat = 1000 * np.array(latencies)
    return {
        "sent": len(stream.sent),
        "shown": len(latencies),
        "fps": len(latencies) / seconds,
        "lat_median": np.median(lat),
        "lat_p95": np.percentile(lat, 95),
        "lat_last": lat[-1],
        "queued_at_end": q.qsize(),
        "peak_queue": peak_queue,
    }


def memory_run(model, frames: int, every: int = 500):
    """Every frame through the whole path (source, masks, depth, cloud, scene update), RSS every ``every``."""
    from SurgicalAICore.mrml.scene import new_scene
    from SurgicalDepthLib.depth.pipeline import FrameProcessor
    from SurgicalDepthLib.depth.scene import LiveSceneOutput
    from SurgicalDepthLib.video.sources import ArraySource

    video = ProceduralVideo()
    scene = new_scene()
    out = LiveSceneOutput(scene, "memory")
    source = ArraySource((video.frame(i) for i in range(frames)), fps=30, name="procedural", count=frames)
    proc = FrameProcessor(model, None, 20000)
    samples = []
    start = time.perf_counter()
    n = 0
    for frame in source:
        r = proc.process(frame)
        out.update(r.rgb, r.depth_mm, r.poly)
        n += 1
        if n == 50 or n % every == 0:
            gc.collect()
            samples.append((n, rss_mib()))
    return {
        "frames": n,
        "seconds": time.perf_counter() - start,
        "samples": samples,
        "scene_nodes": scene.GetNumberOfNodes(),
    }


def main(argv=None):
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=60, help="frames per latency measurement")
    parser.add_argument("--live-seconds", type=float, default=12.0)
    parser.add_argument("--memory-frames", type=int, default=10000)
    parser.add_argument("--memory-model", choices=["procedural", "tiny"], default="procedural")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", help="depth model folder (default: the bundled endoscopy-depth)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "BENCHMARKS_video.md"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from SurgicalDepthLib.depth.loaders import load_depth_model

    from SurgicalAICore.errors import ModelError

    tmp = Path(tempfile.mkdtemp())
    tiny = tiny_model(tmp / "tiny")
    models = {}
    notes = []
    try:
        bundled = load_depth_model(args.model, "cpu")
        models[
            f"{(bundled.card or {}).get('name', 'bundled')} ({bundled.card.get('architecture', {}).get('parameters', '?')} parameters)"
        ] = bundled
    except ModelError as error:
        notes.append(f"- The depth model could not be loaded and was skipped: {error}")
    models["tiny CompactDepthNet (4-8 ch)"] = tiny
    models["no network (procedural depth)"] = ProceduralDepth()
    lat = {}
    for threads in sorted({args.threads, 1}, reverse=True):
        torch.set_num_threads(threads)
        for name, m in models.items():
            if name.startswith("no network") and threads != args.threads:
                continue
            lat[(name, threads)] = stage_latency(m, args.frames, name)
            print(name, threads, {k: round(v, 1) for k, v in lat[(name, threads)].items()}, flush=True)
    torch.set_num_threads(args.threads)
    live = {}
    for name in [n for n in models if not n.startswith("no network")]:
        live[name] = (
            live_newest_wins(models[name], args.live_seconds),
            live_fifo_peer(models[name], args.live_seconds),
        )
        print(name, live[name], flush=True)
    mem_model = ProceduralDepth() if args.memory_model == "procedural" else tiny
    mem = memory_run(mem_model, args.memory_frames) if args.memory_frames > 0 else None
    print("memory", mem, flush=True)

    if mem is not None:
        first = mem["samples"][1][1] if len(mem["samples"]) > 2 else mem["samples"][0][1]
        last = mem["samples"][-1][1]
        peak = max(s[1] for s in mem["samples"][1:]) if len(mem["samples"]) > 1 else last
    lines = [
        "# Benchmark: video -> depth -> point cloud in the scene (SurgicalDepth, issue 5)",
        "",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {platform.machine()}, "
        f"{os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"{args.threads} torch threads, CPU only; 1-minute load average {os.getloadavg()[0]:.1f} at the end"
        + (
            " (other jobs were running: wall-clock times are inflated, CPU ms shows the work itself)."
            if os.getloadavg()[0] > 2.0
            else " (a quiet machine)."
        ),
        f"- Command: `python benchmarks/bench_video_depth.py --frames {args.frames} --live-seconds {args.live_seconds:g} "
        f"--memory-frames {args.memory_frames} --memory-model {args.memory_model}`",
        f"- Frames: {H}x{W} procedural endoscope-like frames (field stop, texture, a highlight); 20 000-point budget.",
        *notes,
        "",
        "## 1. Per-stage latency, frame by frame (median ms)",
        "",
        "| depth model | torch threads | read | prep (masks) | infer | cloud (undistort, back-project, downsample, vtkPolyData) | scene update | frame -> cloud in scene | p95 | fps | CPU ms per frame (all threads) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (name, threads), v in lat.items():
        lines.append(
            f"| {name} | {threads} | {v['read']:.1f} | {v['prep']:.1f} | {v['infer']:.1f} | {v['cloud']:.1f} | "
            f"{v['scene']:.1f} | **{v['total']:.1f}** | {v['p95_total']:.1f} | {v['fps']:.1f} | {v['cpu']:.1f} |"
        )
    lines += [
        "",
        "Target: median frame -> cloud in the scene <= 60 ms.",
        "",
        f"## 2. Live stream at 30 fps for {args.live_seconds:g} s: newest-frame-wins vs a FIFO queue (peer)",
        "",
        "| depth model | processor | frames sent | shown | achieved fps | latency median ms | p95 ms | last ms | dropped / still queued |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, (nw, fifo) in live.items():
        lines.append(
            f"| {name} | LiveProcessor (newest wins) | {nw['sent']} | {nw['shown']} | {nw['fps']:.1f} | "
            f"{nw['lat_median']:.0f} | {nw['lat_p95']:.0f} | {nw['lat_last']:.0f} | {nw['dropped']} dropped |"
        )
        lines.append(
            f"| {name} | FIFO queue (peer) | {fifo['sent']} | {fifo['shown']} | {fifo['fps']:.1f} | "
            f"{fifo['lat_median']:.0f} | {fifo['lat_p95']:.0f} | {fifo['lat_last']:.0f} | "
            f"{fifo['queued_at_end']} queued (peak {fifo['peak_queue']}) |"
        )
        ratio = fifo["lat_last"] / max(nw["lat_last"], 1e-9)
        lines.append(f"| {name} | ratio FIFO / newest-wins, last-frame latency | | | | | | {ratio:.1f}x | |")
    if mem is not None:
        lines += [
            "",
            f"## 3. Memory over {mem['frames']} frames (whole live path, {args.memory_model} depth)",
            "",
            f"- Depth: {'procedural (no network), to isolate the pipeline' if args.memory_model == 'procedural' else 'tiny CompactDepthNet'}; "
            f"every frame processed and shown, in {mem['seconds']:.0f} s; "
            f"scene nodes at the end: {mem['scene_nodes']}.",
            f"- RSS after warm-up {first:.1f} MiB, peak {peak:.1f} MiB, at the end {last:.1f} MiB: "
            f"**{100 * (last / first - 1):+.1f} %** (flat = within +-10 %).",
            "- Samples (frames, MiB): " + ", ".join(f"({n}, {m:.0f})" for n, m in mem["samples"]),
            "",
        ]
    out = Path(args.out)
    # section 4 (the `surgicalai depth` command end to end, bench_depth_cli.py) is written by hand: keep it
    kept = out.read_text().split(CLI_SECTION, 1) if out.exists() else []
    tail = CLI_SECTION + kept[1] if len(kept) == 2 else ""
    out.write_text("\n".join(lines) + "\n" + ("\n" + tail if tail else ""))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
