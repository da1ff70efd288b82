"""Throughput of ``surgicalai depth`` end to end (start-up, reading, network, clouds, files) on a frame folder.

    python benchmarks/bench_depth_cli.py [--folder FRAMES] [--frames 120] [--tree OTHER_CHECKOUT ...] [--rounds 2]

Without ``--folder`` it renders ``--frames`` 320x256 laparoscopy frames once (into /tmp). Each tree (this
checkout, and any ``--tree`` given, e.g. ``git archive <old commit> | tar -x -C /tmp/before``) is run in turn,
alternating for ``--rounds`` rounds so a change in the machine's load hits both alike. Reported per run: wall
seconds, frames/s, CPU seconds of the command, the 1-minute load average at its start, and the files written.
Writes benchmarks/results_depth_cli.json.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def render_folder(folder: Path, frames: int) -> None:
    sys.path[:0] = [str(ROOT / "SegmentationAI"), str(ROOT / "SurgicalDepth"), str(ROOT)]
    import cv2

    from SurgicalDepthLib.registration.evaluation import prepare

    folder.mkdir(parents=True)
    for f in prepare("laparoscopy", n_frames=frames, seed=4).frames:
        cv2.imwrite(str(folder / f"frame_{f.index:04d}.png"), cv2.cvtColor(f.rgb, cv2.COLOR_RGB2BGR))


def run_once(tree: Path, folder: Path, out: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(tree / p) for p in ("", "SegmentationAI", "SurgicalDepth")))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "surgicalai.cli", "depth", str(folder), "-o", str(out)],
                          cwd=tree, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{tree}: surgicalai depth failed: {proc.stderr.strip()[-400:]}")
    frames = len(list(folder.glob("*.png")))
    return {"tree": str(tree), "wall_s": wall, "frames_per_s": frames / wall, "load": load,
            "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "files": len(list(out.iterdir())), "summary": proc.stdout.strip().splitlines()[-1]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folder", help="folder of frames (default: render --frames laparoscopy frames)")
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--tree", action="append", default=[], help="another checkout to time the same way")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results_depth_cli.json"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="depth-cli-"))
    folder = Path(args.folder) if args.folder else work / "frames"
    if not args.folder:
        render_folder(folder, args.frames)
    runs = []
    for r in range(args.rounds):
        for tree in [*map(Path, args.tree), ROOT]:
            out = work / f"out-{r}-{len(runs)}"
            runs.append(run_once(tree.resolve(), folder, out))
            print(json.dumps({k: v for k, v in runs[-1].items() if k != "summary"}))
    Path(args.json).write_text(json.dumps({"folder": str(folder), "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
