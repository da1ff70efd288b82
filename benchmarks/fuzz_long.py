"""The long fuzz run of issue 16: each parser of ``Testing/test_fuzz_parsers.py`` for N examples.

Each parser runs in chunks (one pytest process per chunk, a new ``--hypothesis-seed`` each, so a later
run continues with fresh examples rather than repeating); the JSON is rewritten after every chunk, so a
run stopped by its time budget still says how far each parser got. A failing chunk stops that parser
and its hypothesis report (the shrunk example) goes into the JSON. Examples are hypothesis's own count
(passing + failing test cases of all phases, from ``--hypothesis-show-statistics``).

    # examples per second of each parser (200 examples each)
    nice -n 10 python benchmarks/fuzz_long.py --examples 200 --chunk 200 --out /tmp/fuzz_rate.json
    # the long run, cheap parsers first, one core, at most 40 min per parser
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/fuzz_long.py --examples 100000 --chunk 10000 \\
        --parser-minutes 40 --out benchmarks/results_fuzz_long.json
    # continue a parser later from a new seed range
    python benchmarks/fuzz_long.py --parsers dicom --examples 100000 --first-seed 1000 --out /tmp/more.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILE = "Testing/test_fuzz_parsers.py"
# name -> pytest node, cheapest first (measured rates in docs/RELIABILITY.md)
PARSERS = {
    "matrix4x4": "test_fuzz_4x4_matrix",
    "class_mapping": "test_fuzz_class_mapping",
    "landmark_text": "test_fuzz_landmark_and_matrix_text_files",
    "npy": "test_fuzz_npy_cloud",
    "ply": "test_fuzz_ply",
    "sparse_depth": "test_fuzz_sparse_depth_references",
    "camera_json": "test_fuzz_camera_json",
    "camera_opencv": "test_fuzz_camera_opencv",
    "stereo_json": "test_fuzz_stereo_calibration_json",
    "stereo_opencv": "test_fuzz_stereo_calibration_opencv",
    "stereo_text_folder": "test_fuzz_stereo_calibration_text_folder",
    "nifti": "test_fuzz_image_headers[.nii]",
    "nifti_gz": "test_fuzz_image_headers[.nii.gz]",
    "nrrd": "test_fuzz_image_headers[.nrrd]",
    "mha": "test_fuzz_image_headers[.mha]",
    "video_mp4": "test_fuzz_video_files[.mp4-mp4v]",
    "video_avi": "test_fuzz_video_files[.avi-MJPG]",
    "video_ffv1": "test_fuzz_video_files[.mkv-FFV1]",
    "video_iyuv": "test_fuzz_video_files[.avi-IYUV]",
    "video_vp8": "test_fuzz_video_files[.mkv-VP80]",
    "model_card": "test_fuzz_model_card",
    "dicom": "test_fuzz_dicom_folder",
}
COUNTS = re.compile(r"(\d+) passing, (\d+) failing, and (\d+) invalid")
PHASE = re.compile(r"during generate phase \(([\d.]+) seconds\)")


def run_chunk(node: str, examples: int, seed: int, timeout: float) -> dict:
    env = dict(os.environ, SURGICALAI_FUZZ_EXAMPLES=str(examples), OMP_NUM_THREADS="1",
               PYTHONPATH=f"{ROOT}:{ROOT / 'SegmentationAI'}:{ROOT / 'SurgicalDepth'}")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore", f"{FILE}::{node}",
           f"--hypothesis-seed={seed}", "--hypothesis-show-statistics"]
    t0 = time.time()
    try:
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
                              check=False)
        out, rc = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as error:
        out, rc = (error.stdout or b"").decode(errors="replace") if isinstance(error.stdout, bytes) else (
            error.stdout or ""), "timeout"
    counts = [tuple(int(x) for x in m) for m in COUNTS.findall(out)]
    finding = None
    if rc != 0:
        lines = [ln for ln in out.splitlines() if ln.startswith(("E ", "E\t")) or "Failing test case" in ln
                 or "Error" in ln]
        finding = "\n".join(lines[-25:]) or out[-3000:]
    return {"seed": seed, "examples": sum(p + f for p, f, _ in counts), "invalid": sum(i for *_, i in counts),
            "generate_s": sum(float(x) for x in PHASE.findall(out)), "wall_s": round(time.time() - t0, 1),
            "rc": rc, "finding": finding}


def fuzz_parser(name: str, args, records: list, write) -> dict:
    record = {"parser": name, "node": PARSERS[name], "examples": 0, "wall_s": 0.0, "generate_s": 0.0,
              "chunks": [], "findings": []}
    records.append(record)  # rewritten after every chunk: a stopped run keeps its counts
    seed, t0 = args.first_seed, time.time()
    while record["examples"] < args.examples and time.time() - t0 < args.parser_minutes * 60:
        chunk = run_chunk(PARSERS[name], min(args.chunk, args.examples - record["examples"]), seed,
                          timeout=args.parser_minutes * 60 + 120)
        seed += 1
        record["chunks"].append({k: chunk[k] for k in ("seed", "examples", "wall_s", "rc")})
        record["examples"] += chunk["examples"]
        record["generate_s"] = round(record["generate_s"] + chunk["generate_s"], 1)
        record["wall_s"] = round(time.time() - t0, 1)
        record["examples_per_s"] = round(record["examples"] / max(record["generate_s"], 1e-9), 1)
        write()
        if chunk["finding"]:
            record["findings"].append(chunk["finding"])
            write()
            break
        if chunk["examples"] == 0:
            break  # nothing ran: a collection error, reported by rc
    record["reached_target"] = record["examples"] >= args.examples
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parsers", default=",".join(PARSERS), help="comma-separated, from: " + ", ".join(PARSERS))
    parser.add_argument("--examples", type=int, default=100000, help="target examples per parser")
    parser.add_argument("--chunk", type=int, default=10000, help="examples per pytest process")
    parser.add_argument("--parser-minutes", type=float, default=40.0, help="stop a parser after this wall time")
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results_fuzz_long.json"))
    args = parser.parse_args()
    names = [n.strip() for n in args.parsers.split(",") if n.strip()]
    unknown = sorted(set(names) - set(PARSERS))
    if unknown:
        parser.error(f"unknown parser(s): {', '.join(unknown)}")
    result = {"command": " ".join(sys.argv), "machine": f"{platform.node()} {platform.machine()}, "
              f"{os.cpu_count()} cores (shared)", "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
              "target_examples": args.examples, "parsers": []}

    def write():
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")

    for name in names:
        record = fuzz_parser(name, args, result["parsers"], write)
        write()
        found = f", FINDING: {record['findings'][0].splitlines()[-1][:100]}" if record["findings"] else ""
        print(f"{name}: {record['examples']} examples in {record['wall_s']} s "
              f"({record.get('examples_per_s', 0)}/s in hypothesis){found}", flush=True)
    result["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    write()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
