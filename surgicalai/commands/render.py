"""``surgicalai render SCENARIO[,SCENARIO...] -o DIR --frames N --paths P --seed S [--size 256x320]``."""
from __future__ import annotations

import argparse

HELP = "render a synthetic endoscopy dataset (RGB, metric depth, poses) from CT scenarios"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", help="laparoscopy, sinus, bronchoscopy or shapes; several joined by commas")
    parser.add_argument("-o", "--output", required=True, help="dataset folder to create")
    parser.add_argument("--frames", type=int, default=100, help="total number of frames")
    parser.add_argument("--paths", type=int, default=5, help="number of smooth camera paths (video sequences)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", default="256x320", help="frame size HxW")
    parser.add_argument("--fov", type=float, default=80.0, help="horizontal field of view in degrees")
    parser.add_argument("--camera", help="camera.json (OpenCV intrinsics) instead of --size/--fov")
    parser.add_argument("--val-every", type=int, default=5, help="every N-th path of a scenario goes to the val split")
    parser.add_argument("--data-dir", help="shared data root (default ../shared/data)")
    parser.add_argument("--overwrite", action="store_true")


def run(args: argparse.Namespace) -> int:
    from SurgicalAICore.progress import tqdm_callback

    from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics
    from SurgicalDepthLib.synthetic.dataset import default_camera, parse_size, render_dataset

    names = [n.strip() for n in args.scenario.split(",") if n.strip()]
    if args.camera:
        camera = CameraIntrinsics.load_json(args.camera)
    else:
        h, w = parse_size(args.size)
        camera = default_camera(h, w, args.fov)
    from SurgicalAICore.locks import run_lock

    with run_lock(args.output):  # a second run into the same folder fails now (its existence check alone races)
        out = render_dataset(names, args.output, args.frames, args.paths, args.seed, camera, args.val_every,
                             args.data_dir, args.overwrite, progress=tqdm_callback("render"))
    print(f"wrote {args.frames} frames to {out}")
    return 0
