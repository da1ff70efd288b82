"""Calibrate the registration trust limits on rendered frames with known poses, and check them on others.

    python benchmarks/calibrate_trust.py [--frames 6] [--seeds 1,2,4] [--scenarios laparoscopy,sinus,bronchoscopy]

Frames: each scenario rendered along camera paths (``--seeds``; each path is judged with limits fitted on the
others, the shipped limits on all of them); depth true, noisy (smooth ~10 % error + 1 % pixel noise) and
predicted by the bundled depth model. Writes benchmarks/results_trust_calibration.json (rows, limits,
per-state shares and worst TRE per held-out path); the
limits go into ``SurgicalDepthLib/registration/trust.py`` (CALIBRATION) by hand, so a change is reviewed.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for sub in ("SegmentationAI", "SurgicalDepth", ""):
    sys.path.insert(0, str(ROOT / sub))


def _rows(names, frames, seed, depth_model):
    from SurgicalAICore.errors import SurgicalAIError
    from SurgicalDepthLib.registration.calibration import calibration_rows
    from SurgicalDepthLib.registration.evaluation import prepare

    rows = []
    for name in names:
        t0 = time.perf_counter()
        try:
            setup = prepare(name, n_frames=frames, seed=seed, depth_model=depth_model)
        except SurgicalAIError as error:
            print(f"skip {name}: {error}", flush=True)
            continue
        new = calibration_rows(setup, seed=seed)
        rows += new
        print(f"{name} seed {seed}: {len(new)} rows in {time.perf_counter() - t0:.0f} s", flush=True)
    return rows


def main() -> int:
    from SurgicalDepthLib.depth.loaders import load_depth_model
    from SurgicalDepthLib.registration.trust import calibrate, evaluate

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--scenarios", default="laparoscopy,sinus,bronchoscopy")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results_trust_calibration.json"))
    ap.add_argument("--seeds", default="1,2", help="camera paths (render seeds); 3 is the tracking benchmark's")
    ap.add_argument("--from-json", help="refit the limits on the rows of an earlier run")
    args = ap.parse_args()
    if args.from_json:
        report = json.loads(Path(args.from_json).read_text())
        paths = report.get("rows_by_path") or {"1": report["calibration_rows"], "2": report["check_rows"]}
    else:
        model = load_depth_model(device="cpu")
        names = args.scenarios.split(",")
        paths = {seed: _rows(names, args.frames, int(seed), model) for seed in args.seeds.split(",")}
        report = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes"),
                  "machine": f"{platform.machine()}, {os.cpu_count()}-core CPU, no GPU",
                  "command": "python benchmarks/calibrate_trust.py " + " ".join(sys.argv[1:]),
                  "rows_by_path": paths}
    # held-out estimates: limits fitted on the other camera paths, judged on this one; the shipped limits use all
    for seed, rows in paths.items():
        others = [r for s, rr in paths.items() if s != seed for r in rr]
        report[f"held_out_path_{seed}"] = evaluate(rows, calibrate(others))
    every = [r for rows in paths.values() for r in rows]
    cal = calibrate(every)
    report["limits"] = {"trusted": asdict(cal.trusted), "uncertain": asdict(cal.uncertain)}
    report["on_all_rows"] = evaluate(every, cal)
    report["per_depth"] = {d: evaluate([r for r in every if r["depth"] == d], cal) for d in ("true", "noisy", "pred")}
    Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k.startswith("held_out") or k in ("limits", "on_all_rows",
                                                                                            "per_depth")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
