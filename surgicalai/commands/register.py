"""``surgicalai register CLOUD (--segmentation FILE | --ct FILE --threshold HU | --mesh FILE) -o OUTDIR``.

Registers a camera-frame point cloud (.ply or .npy, mm) to a CT surface and writes the camera-to-CT
transform (RAS, 4x4: ``camera_to_ct.txt``) and ``registration.json`` (matrix, residual, inlier
fraction, quality flag, timings). The start poses are the panel's (``--init``), from one table.
"""
from __future__ import annotations

HELP = ("register a depth point cloud (.ply/.npy) to a CT surface (segmentation, threshold or mesh) "
        "-> transform + report")


def add_arguments(parser) -> None:
    from SurgicalDepthLib.registration.start_poses import INITIALISER_LABELS

    parser.add_argument("cloud", help="point cloud in the camera frame, mm: .ply or .npy (N x 3)")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--segmentation", help="label map (.nii.gz, .nrrd) or Slicer .seg.nrrd of the CT")
    target.add_argument("--ct", help="CT volume (.nii.gz, .nrrd); the surface is the --threshold isosurface")
    target.add_argument("--mesh", help="surface mesh of the anatomy in CT RAS, mm (.stl, .ply, .vtk, .vtp, .obj)")
    parser.add_argument("--open-mesh", action="store_true", help="accept an open (partial) --mesh surface")
    parser.add_argument("--segments", help="comma-separated segment names or label values (default: all)")
    parser.add_argument("--threshold", type=float, default=-400.0, help="isosurface HU for --ct (default -400)")
    parser.add_argument("--init", default="current", choices=list(INITIALISER_LABELS),
                        help="start pose: " + "; ".join(f"{k} = {v.lower()}" for k, v in INITIALISER_LABELS.items())
                             + " (default current: --start, or identity)")
    parser.add_argument("--start", help="file holding the current 4x4 camera-to-RAS matrix (.txt / .npy)")
    parser.add_argument("--landmarks", nargs=2, metavar=("CLOUD_PTS", "CT_PTS"),
                        help="with --init landmarks: two .txt/.npy files of paired points (camera frame, RAS)")
    parser.add_argument("--tracker", help="with --init tracking: the tracker's marker-to-RAS 4x4 matrix file")
    parser.add_argument("--hand-eye", help="with --init tracking: the camera-to-marker 4x4 matrix file")
    parser.add_argument("--scale", action="store_true", help="estimate a uniform scale too (depth known up to scale)")
    parser.add_argument("--budget", type=float, default=1.0, help="seconds for the global search (default 1)")
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda or mps (default cpu)")
    parser.add_argument("-o", "--output", required=True,
                        help="output folder (created inside an existing folder; its two files are replaced)")


MAX_CLOUD_POINTS = 200_000  # registration uses far fewer; larger clouds are subsampled before any work


def _matrix_file(path, what, scale=False):
    from SurgicalAICore.validation import check_rigid
    from SurgicalDepthLib.registration.files import read_points_file

    if path is None:
        return None
    return check_rigid(read_points_file(path, what), f"{what} file {path}", scale=scale)


def _checked_cloud(path):
    """The cloud as (N, 3); a huge one is subsampled (said on stdout) so the run stays seconds long."""
    import numpy as np

    from SurgicalAICore.errors import InputError
    from SurgicalDepthLib.registration.files import read_points_file

    cloud = read_points_file(path, "point cloud")
    if cloud.ndim != 2 or cloud.shape[1] != 3:
        raise InputError(f"The point cloud {path} must be an (N, 3) array, got shape {cloud.shape}.")
    if not np.all(np.isfinite(cloud)):
        bad = int((~np.all(np.isfinite(cloud), axis=1)).sum())
        raise InputError(f"The point cloud has {bad} points with NaN/inf coordinates: drop invalid depth first.")
    if len(cloud) > MAX_CLOUD_POINTS:
        keep = np.random.default_rng(0).choice(len(cloud), MAX_CLOUD_POINTS, replace=False)
        print(f"point cloud has {len(cloud)} points: registering a random {MAX_CLOUD_POINTS} of them")
        cloud = cloud[np.sort(keep)]
    return cloud


def _init_inputs(args) -> dict:
    from SurgicalDepthLib.registration.files import read_points_file

    from SurgicalAICore.validation import check_positive

    inputs = {"current": _matrix_file(args.start, "start pose", args.scale),
              "budget_s": check_positive(args.budget, "--budget", high=3600),
              "tracker_to_ras": _matrix_file(args.tracker, "tracker pose"),
              "camera_to_tracker": _matrix_file(args.hand_eye, "hand-eye calibration")}
    if args.landmarks:
        inputs["landmarks_cloud"] = read_points_file(args.landmarks[0], "landmark")
        inputs["landmarks_ct"] = read_points_file(args.landmarks[1], "landmark")
    return inputs


def _write_outputs(out, result, report) -> None:
    """Both files appear together: a new folder is moved into place whole; into an existing folder
    the two finished files are moved in one after the other (nothing else in it is touched)."""
    import json
    import os
    import tempfile

    import numpy as np

    from SurgicalAICore.atomic import atomic_dir, publish

    def fill(folder):
        np.savetxt(folder / "camera_to_ct.txt", result.matrix, fmt="%.9f")
        (folder / "registration.json").write_text(json.dumps(report, indent=2) + "\n")

    if not out.exists():
        with atomic_dir(out) as tmp:
            fill(tmp)
        return
    from pathlib import Path

    tmp = Path(tempfile.mkdtemp(prefix=".register.", suffix=".tmp", dir=out))
    try:
        fill(tmp)
        for name in ("camera_to_ct.txt", "registration.json"):
            publish(tmp / name, out / name)
    finally:
        for leftover in tmp.iterdir():
            leftover.unlink()
        os.rmdir(tmp)


def _check_paths(args):
    from pathlib import Path

    from SurgicalAICore.errors import InputError
    from SurgicalAICore.validation import check_output_folder, check_output_not_input

    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise InputError(f"The output {out} exists and is not a folder.")
    inputs = [args.cloud, args.segmentation, args.ct, args.mesh, args.start, args.tracker, args.hand_eye,
              *(args.landmarks or [])]
    for name in ("camera_to_ct.txt", "registration.json"):
        check_output_not_input(out / name, inputs, "output", replaces_folder=False)
    check_output_folder(out, "output folder")
    return out


def run(args) -> int:
    import time

    from SurgicalDepthLib.registration.files import load_target_file
    from SurgicalDepthLib.registration.register import register_cloud
    from SurgicalDepthLib.registration.pinning import local_refit, refit_spread
    from SurgicalDepthLib.registration.trust import classify, only_conditioning_fails
    from SurgicalDepthLib.registration.trust import features as trust_features

    start = time.perf_counter()
    out = _check_paths(args)
    init_inputs = _init_inputs(args)
    cloud = _checked_cloud(args.cloud)
    segments = [s.strip() for s in args.segments.split(",")] if args.segments else None
    kind = "segmentation" if args.segmentation else "ct" if args.ct else "mesh"
    target = load_target_file(args.segmentation or args.ct or args.mesh, kind=kind, segments=segments,
                              threshold_hu=args.threshold, allow_open=args.open_mesh, cloud=cloud)
    registered = register_cloud(cloud, target, method=args.init, scale=args.scale, device=args.device,
                                **init_inputs)
    result, quality = registered.icp, registered.quality
    features = trust_features(result, registered.initial, cloud)
    if args.init.startswith("global"):  # a search is meant to move far from its start: no motion model here
        features.moved_mm = features.turned_deg = 0.0
    if only_conditioning_fails(features):  # a narrow view: pinned if re-fits around the pose come back to it
        features.spread_mm = refit_spread(cloud, result.matrix, local_refit(cloud, target, args.scale, args.device))
    state, why = classify(features)
    report = {"camera_to_ct_ras": result.matrix.tolist(), "initial": registered.initial.tolist(),
              "init": args.init, "rms_mm": result.rms_mm, "inlier_fraction": result.inlier_fraction,
              "scale": result.scale, "iterations": result.iterations, "points": result.n_points,
              "trusted": quality.trusted, "reason": quality.reason, "trust": state, "trust_reason": why,
              "trust_features": features.as_dict(), "seconds": time.perf_counter() - start,
              "target": target.name, "convention": "4x4 maps camera-frame points (OpenCV, mm) to CT RAS (mm)"}
    _write_outputs(out, result, report)
    flag = "trusted" if quality.trusted else f"NOT trusted ({quality.reason})"
    print(f"registered {result.n_points} points: RMS {result.rms_mm:.3f} mm, inliers "
          f"{100 * result.inlier_fraction:.0f}%, {flag} -> {out / 'camera_to_ct.txt'}")
    return 0 if quality.trusted else 1
