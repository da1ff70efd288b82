"""``surgicalai depth INPUT -o OUTDIR``: depth maps and point clouds for every frame of a video or frame folder."""
from __future__ import annotations

HELP = "depth maps (.npy, mm) and point clouds (.ply) for every frame of a video file or a folder of frames"


def add_arguments(parser) -> None:
    parser.add_argument("input", help="video file (mp4, avi, mkv) or folder of frames (png, jpg); with "
                                      "--stereo-calibration the left (or packed) view")
    parser.add_argument("-o", "--output", required=True, help="output folder (must not exist or be empty)")
    parser.add_argument("--camera", help="camera intrinsics: .json, or OpenCV .yml/.yaml/.xml "
                                         "(default: a centred pinhole with the model's field of view)")
    parser.add_argument("--model", help="depth model folder or bundled model name (default: endoscopy-depth; "
                        "endoscopy-depth-video ranks real video's depth better)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--points", type=int, default=20000, help="point budget per cloud (default 20000)")
    parser.add_argument("--no-ply", action="store_true", help="write depth maps and timings only")
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    parser.add_argument("--fps", type=float, default=30.0, help="frame rate of a frame folder (timestamps)")
    from surgicalai.commands.stereo_options import add_stereo_arguments

    add_stereo_arguments(parser)


def run(args) -> int:
    from SurgicalAICore.errors import InputError
    from SurgicalAICore.progress import tqdm_callback

    from SurgicalDepthLib.camera.files import load_camera
    from SurgicalDepthLib.depth.loaders import load_depth_model as load_model
    from SurgicalDepthLib.depth.pipeline import process_video
    from SurgicalDepthLib.video.sources import open_source

    _set_torch_threads()
    if args.points is not None and args.points < 1:
        raise InputError(f"--points must be at least 1, got {args.points}.")
    if args.max_frames is not None and args.max_frames < 1:
        raise InputError(f"--max-frames must be at least 1, got {args.max_frames}.")
    if args.stereo_calibration or args.right or args.layout:
        from surgicalai.commands.stereo_options import stereo_inputs

        source, camera, model = stereo_inputs(args)
    else:
        source = open_source(args.input, fps=args.fps)
        camera = load_camera(args.camera) if args.camera else None
        model = load_model(args.model, args.device)
    from SurgicalAICore.locks import run_lock

    with run_lock(args.output):  # a second run into the same folder fails now, not after all its frames
        summary = process_video(source, camera, model, out_dir=args.output, max_points=args.points,
                                write_clouds=not args.no_ply, max_frames=args.max_frames,
                                progress=tqdm_callback("depth"))
    m = summary.median_ms
    print(f"{summary.frames} frames -> {summary.out_dir} ({summary.fps:.1f} frames/s; median ms: read "
          f"{m['read']:.1f}, infer {m['infer']:.1f}, cloud {m['cloud']:.1f}, write {m['write']:.1f})")
    return 0


def _set_torch_threads() -> None:
    """Once, before the model runs: the network on all cores but one, which makes each frame's cloud and files
    meanwhile (process_video overlaps them). OMP_NUM_THREADS, when set, wins. Two network threads on a two-core
    machine that is also writing files ran 7x slower per frame than one when the machine was shared (threads
    waiting on each other)."""
    import os

    if os.environ.get("OMP_NUM_THREADS"):
        return
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(1, cores - 1))
