"""Calibrate the registration trust limits on rendered frames with known poses, and check them on others.

    python benchmarks/calibrate_trust.py [--frames 6] [--scenarios laparoscopy,sinus,bronchoscopy]

Frames: each scenario rendered along a camera path (seed 1: calibration; seed 2: held-out check); depth true,
noisy (smooth ~10 % error + 1 % pixel noise) and predicted by the bundled depth model. Writes
benchmarks/results_trust_calibration.json (rows, limits, per-state shares and worst TRE on both sets); the
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
    ap.add_argument("--from-json", help="refit the limits on the rows of an earlier run")
    args = ap.parse_args()
    if args.from_json:
        report = json.loads(Path(args.from_json).read_text())
        fit, check = report["calibration_rows"], report["check_rows"]
    else:
        model = load_depth_model(device="cpu")
        names = args.scenarios.split(",")
        fit = _rows(names, args.frames, 1, model)
        check = _rows(names, args.frames, 2, model)
        report = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes"),
                  "machine": f"{platform.machine()}, {os.cpu_count()}-core CPU, no GPU",
                  "command": "python benchmarks/calibrate_trust.py " + " ".join(sys.argv[1:]),
                  "calibration_rows": fit, "check_rows": check}
    # held-out estimates: limits fitted on one camera path, judged on the other; the shipped limits use both
    report["fit_seed1_check_seed2"] = evaluate(check, calibrate(fit))
    report["fit_seed2_check_seed1"] = evaluate(fit, calibrate(check))
    cal = calibrate(fit + check)
    report["limits"] = {"trusted": asdict(cal.trusted), "uncertain": asdict(cal.uncertain)}
    report["on_all_rows"] = evaluate(fit + check, cal)
    report["per_depth"] = {d: evaluate([r for r in fit + check if r["depth"] == d], cal)
                           for d in ("true", "noisy", "pred")}
    Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: report[k] for k in ("limits", "fit_seed1_check_seed2", "fit_seed2_check_seed1",
                                             "on_all_rows", "per_depth")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
