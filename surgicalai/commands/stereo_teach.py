"""``surgicalai stereo-teach INPUT --stereo-calibration FILE -o MODEL_DIR``: fine-tune the monocular depth
network on a stereo video, supervised by the confident stereo depth."""
from __future__ import annotations

HELP = "fine-tune the monocular depth model on your stereo video (confident stereo depth as supervision)"


def add_arguments(parser) -> None:
    parser.add_argument("input", help="stereo video or frame folder: the left view, or both views with --layout")
    parser.add_argument("-o", "--output", required=True, help="new model folder (must not exist)")
    parser.add_argument("--model", help="depth model folder to start from (default: the bundled endoscopy-depth)")
    parser.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    parser.add_argument("--minutes", type=float, help="stop training after this many minutes")
    parser.add_argument("--frames", type=int, default=64,
                        help="stereo pairs to read, spread over the video (default 64)")
    parser.add_argument("--held-out", type=float, default=0.2,
                        help="share of the last usable pairs held back for the before/after error (default 0.2)")
    parser.add_argument("--lr", type=float, default=2e-4, help="learning rate (default 2e-4)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--fps", type=float, default=30.0, help="frame rate of a frame folder (timestamps)")
    from surgicalai.commands.stereo_options import add_stereo_arguments

    add_stereo_arguments(parser)


def run(args) -> int:
    from SurgicalAICore.errors import InputError
    from SurgicalAICore.progress import tqdm_callback

    from SurgicalDepthLib.stereo.matching import StereoSettings
    from SurgicalDepthLib.stereo.teach import TeachSettings, teach_from_stereo

    if not args.stereo_calibration:
        raise InputError("stereo-teach needs --stereo-calibration.")
    stereo = StereoSettings(min_depth_mm=args.depth_range[0], max_depth_mm=args.depth_range[1],
                            scale=args.stereo_scale, smoothing=args.smooth)
    settings = TeachSettings(lr=args.lr, device=args.device, stereo=stereo)
    progress = tqdm_callback("stereo-teach")
    try:
        result = teach_from_stereo(args.input, args.stereo_calibration, args.output, model=args.model,
                                   settings=settings, right=args.right, layout=args.layout, fps=args.fps,
                                   frames=args.frames, steps=args.steps, minutes=args.minutes,
                                   held_out_fraction=args.held_out, progress=progress)
    except BaseException:
        progress(1.0, "")   # closes (and clears) the bar so that the error starts on its own line
        raise
    b, a = result.before, result.after
    print(f"{result.train_frames} pairs taught, {result.held_out_frames} held out, {result.steps} steps "
          f"({result.seconds:.0f} s) -> {result.output}; held-out AbsRel vs stereo: metric {b['metric_abs_rel']:.3f} "
          f"-> {a['metric_abs_rel']:.3f}, median-scaled {b['median_abs_rel']:.3f} -> {a['median_abs_rel']:.3f}")
    return 0
