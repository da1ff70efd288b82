"""``surgicalai register CLOUD (--segmentation FILE | --ct FILE --threshold HU) -o OUTDIR``.

Registers a camera-frame point cloud (.ply or .npy, mm) to a CT surface and writes the camera-to-CT
transform (RAS, 4x4: ``camera_to_ct.txt``) and ``registration.json`` (matrix, residual, inlier
fraction, quality flag, timings).
"""
from __future__ import annotations

HELP = "register a depth point cloud (.ply/.npy) to a CT surface (segmentation or threshold) -> transform + report"


def add_arguments(parser) -> None:
    parser.add_argument("cloud", help="point cloud in the camera frame, mm: .ply or .npy (N x 3)")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--segmentation", help="label map (.nii.gz, .nrrd) or Slicer .seg.nrrd of the CT")
    target.add_argument("--ct", help="CT volume (.nii.gz, .nrrd); the surface is the --threshold isosurface")
    parser.add_argument("--segments", help="comma-separated segment names or label values (default: all)")
    parser.add_argument("--threshold", type=float, default=-400.0, help="isosurface HU for --ct (default -400)")
    parser.add_argument("--init", default="identity",
                        help="start: identity, global (search without prior), or a file holding a 4x4 camera-to-RAS "
                             "matrix (.txt / .npy) that is then refined (add --global to search around it)")
    parser.add_argument("--global", dest="global_search", action="store_true",
                        help="global multi-start search around the --init pose before ICP")
    parser.add_argument("--landmarks", nargs=2, metavar=("CLOUD_PTS", "CT_PTS"),
                        help="two .txt/.npy files of paired points (camera frame, RAS) for the start pose")
    parser.add_argument("--scale", action="store_true", help="estimate a uniform scale too (depth known up to scale)")
    parser.add_argument("--budget", type=float, default=1.0, help="seconds for the global search (default 1)")
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda or mps (default cpu)")
    parser.add_argument("-o", "--output", required=True, help="output folder (created; files are replaced)")


def _points_file(path: str, what: str):
    import numpy as np

    from SegmentationAILib.errors import InputError

    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{what} file not found: {p}")
    try:
        if p.suffix.lower() == ".npy":
            return np.load(p, allow_pickle=False)
        if p.suffix.lower() == ".ply":
            from .pointcloud import read_ply

            return read_ply(p).points.astype(np.float64)
        return np.loadtxt(p, delimiter="," if p.suffix.lower() == ".csv" else None, ndmin=2)
    except (OSError, ValueError) as error:
        raise InputError(f"Cannot read {what} file {p}: {error}") from None


def load_target(args):
    """RegistrationTarget from the CLI arguments."""
    from pathlib import Path

    import numpy as np
    import SimpleITK as sitk

    from SegmentationAILib.errors import InputError
    from SegmentationAILib.geometry import array_from_sitk

    from .registration_target import target_from_polydata, target_from_segmentation, threshold_surface

    path = Path(args.segmentation or args.ct)
    if not path.is_file():
        raise InputError(f"Target file not found: {path}")
    names = [s.strip() for s in args.segments.split(",")] if args.segments else None
    if args.segmentation and path.name.endswith(".seg.nrrd"):
        from SegmentationAILib.segmentation_nodes import read_seg_nrrd

        return target_from_segmentation(read_seg_nrrd(path), names)
    try:
        array, ijk_to_ras = array_from_sitk(sitk.ReadImage(str(path)))
    except RuntimeError as error:
        raise InputError(f"Cannot read {path}: {str(error).strip().splitlines()[-1]}") from None
    if args.ct:
        return target_from_polydata(threshold_surface(array, ijk_to_ras, args.threshold), name=path.name)
    from SegmentationAILib.segmentation_nodes import new_segmentation_node

    values = [int(v) for v in np.unique(array) if v > 0]
    if not values:
        raise InputError(f"Label map {path} is empty: no surface to register to.")
    labels = [{"value": v, "name": str(v), "color": [1.0, 0.5, 0.3]} for v in values]
    node = new_segmentation_node(array.astype(np.int32), ijk_to_ras, labels, name=path.name, closed_surface=False)
    return target_from_segmentation(node, names)


def run(args) -> int:
    import json
    import os
    import time
    from pathlib import Path

    import numpy as np

    from SegmentationAILib.errors import InputError

    from .icp import icp
    from .registration_init import global_init, landmark_transform
    from .registration_scene import assess

    start = time.perf_counter()
    cloud = _points_file(args.cloud, "point cloud")
    target = load_target(args)
    if args.landmarks:
        init = landmark_transform(_points_file(args.landmarks[0], "landmark"),
                                  _points_file(args.landmarks[1], "landmark"), scale=args.scale)
    elif args.init == "identity":
        init = np.eye(4)
    elif args.init == "global":
        init = None
    else:
        init = _points_file(args.init, "initial transform")
        if init.shape != (4, 4):
            raise InputError(f"--init file must hold a 4x4 matrix, got shape {init.shape}.")
    if init is None or args.global_search:
        init = global_init(cloud, target, prior=init, budget_s=args.budget, scale=args.scale, device=args.device).matrix
    result = icp(cloud, target, init, scale=args.scale, device=args.device)
    quality = assess(result)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    report = {"camera_to_ct_ras": result.matrix.tolist(), "initial": np.asarray(init).tolist(),
              "rms_mm": result.rms_mm, "inlier_fraction": result.inlier_fraction, "scale": result.scale,
              "iterations": result.iterations, "points": result.n_points, "trusted": quality.trusted,
              "reason": quality.reason, "seconds": time.perf_counter() - start,
              "target": target.name, "convention": "4x4 maps camera-frame points (OpenCV, mm) to CT RAS (mm)"}
    for name, text in (("camera_to_ct.txt", None), ("registration.json", json.dumps(report, indent=2) + "\n")):
        tmp = out / f".{name}.tmp"
        if text is None:
            np.savetxt(tmp, result.matrix, fmt="%.9f")
        else:
            tmp.write_text(text)
        os.replace(tmp, out / name)
    flag = "trusted" if quality.trusted else f"NOT trusted ({quality.reason})"
    print(f"registered {result.n_points} points: RMS {result.rms_mm:.3f} mm, inliers {100 * result.inlier_fraction:.0f}%, "
          f"{flag} -> {out / 'camera_to_ct.txt'}")
    return 0 if quality.trusted else 1
