"""``surgicalai fuse CLOUD... --poses POSES.npy -o FUSED.ply``: several registered depth frames into one surface.

Each cloud (.ply/.npy, camera frame, mm) is placed with its camera-to-CT pose (``POSES.npy``: (N, 4, 4), one
per cloud, in order; e.g. from tracking). ``--method tsdf`` (default) averages signed distances along each
frame's rays, so frames whose depth disagrees meet in one surface (what monocular depth needs); ``cells``
averages the points in each ``--voxel`` cell. The fused cloud (.ply with normals for tsdf, .vtk or .vtp, CT RAS
mm) can then be registered or shown as a model.
"""
from __future__ import annotations

HELP = "fuse several registered depth clouds (.ply/.npy + camera-to-CT poses) into one surface cloud"


def add_arguments(parser) -> None:
    parser.add_argument("clouds", nargs="+", help="point clouds in the camera frame, mm (.ply or .npy)")
    parser.add_argument("--poses", required=True, help=".npy of shape (N, 4, 4): camera-to-CT pose of each cloud")
    parser.add_argument("--method", choices=("tsdf", "cells"), default="tsdf",
                        help="tsdf: signed distances along the rays (default); cells: points averaged per cell")
    parser.add_argument("--voxel", type=float, default=None,
                        help="voxel or cell size in mm (default: 1/85 of the median depth for tsdf, 1 for cells)")
    parser.add_argument("--trunc", type=float, default=None,
                        help="tsdf truncation band in mm (default 8 voxels, about 9 %% of the depth)")
    parser.add_argument("--min-frames", type=int, default=1,
                        help="keep surface points seen in at least this many frames")
    parser.add_argument("--align-scale", action="store_true",
                        help="fit each frame's depth scale to the frames before it first (monocular depth whose "
                             "scale varies per frame, poses from a tracker or structure from motion)")
    parser.add_argument("-o", "--output", required=True, help="fused cloud: .ply, .vtk or .vtp")


def run(args) -> int:
    from pathlib import Path

    import numpy as np

    from SurgicalAICore.errors import InputError
    from SurgicalDepthLib.registration.files import read_points_file
    from SurgicalDepthLib.registration.fusion import fuse_frames, write_fused

    out = Path(args.output)
    if out.suffix.lower() not in (".ply", ".vtk", ".vtp"):
        raise InputError(f"Output format '{out.suffix}' is not supported: use .ply, .vtk or .vtp.")
    poses = None
    if args.poses.endswith(".npy"):
        try:
            poses = np.load(args.poses, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise InputError(f"Cannot read the poses file {args.poses}: {str(error).splitlines()[0]}") from None
    if poses is None or poses.ndim != 3 or poses.shape[1:] != (4, 4):
        raise InputError("--poses must be a .npy file of shape (N, 4, 4), one camera-to-CT pose per cloud.")
    for name, value in (("--voxel", args.voxel), ("--trunc", args.trunc)):
        if value is not None and not value > 0:
            raise InputError(f"{name} must be a positive size in mm, got {value}.")
    clouds = [read_points_file(c, "point cloud") for c in args.clouds]
    fused = fuse_frames(clouds, list(poses), args.method, voxel_mm=args.voxel, min_frames=args.min_frames,
                        align_scale=args.align_scale, trunc_mm=args.trunc)
    if len(fused.points) == 0:
        raise InputError(f"No surface point was seen in {args.min_frames} frames: lower --min-frames.")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_fused(fused, out)
    print(f"fused {fused.n_frames} frames ({sum(len(c) for c in clouds)} points) into {len(fused.points)} "
          f"surface points ({args.method}, {fused.voxel_mm:.3g} mm) -> {out}"
          + (f" (depth scales {', '.join(f'{k:.3f}' for k in fused.scales)})" if args.align_scale else ""))
    return 0
