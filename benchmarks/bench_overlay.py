"""Overlay stage alone: the fast path (``composite.silhouette``, box blending) against the reference
(``structure_mask``, whole-frame blending), interleaved in one process on the same frames, so that a busy shared
machine slows both alike.

    python benchmarks/bench_overlay.py [--frames 12] [--rounds 5] [--overlay-triangles 5000]

Frames and structures are bench_latency.py's (laparoscopy scenario, 10 structures); prints CPU ms per frame
(median over rounds) and whether the two drew the same pixels.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for sub in ("SegmentationAI", "SurgicalDepth", ""):
    sys.path.insert(0, str(ROOT / sub))


def main() -> int:
    import torch

    from SurgicalDepthLib.overlay.composite import overlay_frame, structures_from_surfaces
    from SurgicalDepthLib.registration.evaluation import prepare

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--overlay-triangles", type=int, default=5000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    setup = prepare("laparoscopy", n_frames=args.frames, seed=4, frames_per_key=30)
    structures = structures_from_surfaces(setup.target.segments, max_triangles=args.overlay_triangles)
    load = os.getloadavg()[0]
    same = all(np.array_equal(overlay_frame(f.rgb, structures, f.pose, setup.camera, fast=True)[0],
                              overlay_frame(f.rgb, structures, f.pose, setup.camera, fast=False)[0])
               for f in setup.frames)
    cpu = {True: [], False: []}
    for _ in range(args.rounds):
        for fast in (True, False):
            t = time.process_time()
            for f in setup.frames:
                overlay_frame(f.rgb, structures, f.pose, setup.camera, fast=fast)
            cpu[fast].append(1000 * (time.process_time() - t) / len(setup.frames))
    print(f"load {load:.1f} -> {os.getloadavg()[0]:.1f}; {len(structures)} structures, "
          f"{sum(len(s.triangles) for s in structures)} triangles; same pixels: {same}")
    for fast, label in ((False, "reference (structure_mask)"), (True, "fast (silhouette)")):
        print(f"{label:28s} CPU ms per frame: median {np.median(cpu[fast]):.1f} (rounds {np.round(cpu[fast], 1)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
