"""``surgicalai adapt-depth VIDEO_OR_FOLDER -o MODELDIR``: adapt a depth model to one's own video, without labels."""
from __future__ import annotations

import argparse

# AdaptConfig's defaults, repeated for --help (a test checks they agree)
SPARSE_DEFAULT, SPARSE_SFM_DEFAULT, CONSISTENCY_SFM_DEFAULT = 0.5, 2.0, 3.0
DISTILL_DEFAULT, TRAIN_LAYERS_DEFAULT = 0.0, "all"
HELP = "adapt the depth model to a video by self-supervision (camera motion + photometric reprojection)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="video file or folder of frames")
    parser.add_argument("-o", "--output", required=True, help="model folder to write")
    parser.add_argument("--model", help="depth model folder or bundled model name to start from "
                        "(default: the bundled endoscopy-depth-video, trained for real video)")
    parser.add_argument("--camera", help="intrinsics: .json/.yml/.yaml/.xml, or a .txt 3x3 K for the frame size")
    parser.add_argument("--minutes", type=float, default=12.0, help="wall-clock budget, motion estimation included")
    parser.add_argument("--frames", help="FIRST-LAST: 0-based positions of the frames to use (inclusive)")
    parser.add_argument("--holdout", type=float, default=0.1, help="fraction of the last frames held back for the card")
    parser.add_argument("--motion", choices=("auto", "sfm", "pairs"), default="auto",
                        help="camera motion: structure from motion over the whole clip (pycolmap; consistent poses "
                        "and multi-view sparse points), two-view pairs, or auto (default): sfm, and pairs where "
                        "the clip cannot be reconstructed")
    # defaults (None) are AdaptConfig's: the library is not imported here, so that --help stays fast
    parser.add_argument("--sparse-weight", type=float,
                        help="weight of the scale-free error at the reconstructed points "
                        f"(default {SPARSE_SFM_DEFAULT} with the clip's reconstruction, {SPARSE_DEFAULT} with pairs)")
    parser.add_argument("--consistency-weight", type=float,
                        help="weight of the dense depth consistency between registered frames (Liu et al. 2020); "
                        f"0 = off (default {CONSISTENCY_SFM_DEFAULT} with --motion sfm or auto, 0 with pairs and "
                        "where auto falls back to them)")
    parser.add_argument("--distill-weight", type=float,
                        help="weight of the scale-and-shift-invariant distillation to the source model (against "
                        f"forgetting); 0 = off (default {DISTILL_DEFAULT})")
    parser.add_argument("--train-layers", choices=("all", "decoder"),
                        help="layers that adapt: all, or only the decoder (the encoder stays as trained; "
                        f"default {TRAIN_LAYERS_DEFAULT})")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue from <output>.checkpoints/last.pt")
    parser.add_argument("--overwrite", action="store_true")


def read_camera_file(path: str | None, frame_size: tuple[int, int] | None = None):
    """Intrinsics from a calibration file; a ``.txt`` 3x3 matrix needs the frame size (width, height)."""
    from pathlib import Path

    import numpy as np

    from SurgicalAICore.errors import InputError

    from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics
    from SurgicalDepthLib.camera.files import load_camera

    if path is None:
        return None
    if Path(path).suffix.lower() != ".txt":
        return load_camera(path)
    try:
        K = np.loadtxt(path).reshape(3, 3)
    except (OSError, ValueError) as error:
        raise InputError(f"Camera file {path}: expected a 3x3 matrix ({error}).") from None
    width, height = frame_size
    return CameraIntrinsics(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), width, height)


def run(args: argparse.Namespace) -> int:
    from SurgicalAICore.progress import tqdm_callback

    from SurgicalDepthLib.depth.adapt import AdaptConfig, adapt_depth_model, parse_range, read_clip

    frame_range = parse_range(args.frames)
    camera = None
    if args.camera:
        size = None
        if args.camera.lower().endswith(".txt"):
            first = read_clip(args.source, (frame_range or (0, 0))[0:1] * 2, max_width=10 ** 6)
            if not first.frames:
                raise_empty(args.source)
            size = (first.frames[0].shape[1], first.frames[0].shape[0])
        camera = read_camera_file(args.camera, size)
    cfg = AdaptConfig(minutes=args.minutes, batch_size=args.batch_size, lr=args.lr, threads=args.threads,
                      seed=args.seed, holdout_fraction=args.holdout, motion_source=args.motion,
                      **{k: getattr(args, k) for k in ("sparse_weight", "consistency_weight", "distill_weight",
                                                        "train_layers") if getattr(args, k) is not None})
    from SurgicalAICore.locks import run_lock

    with run_lock(args.output):  # two runs onto one output would share (and overwrite) one checkpoint
        result = adapt_depth_model(args.source, args.output, camera=camera, model=args.model, config=cfg,
                                   frame_range=frame_range, resume=args.resume, overwrite=args.overwrite,
                                   progress=tqdm_callback("adapt-depth"), log=lambda m: print(m, flush=True))
    metrics = result.card.get("metrics", {})
    print(f"wrote model {result.path}; held-back photometric error "
          f"{metrics.get('held_back_photometric_before')} -> {metrics.get('held_back_photometric_after')}")
    return 0


def raise_empty(source) -> None:
    from SurgicalAICore.errors import InputError

    raise InputError(f"No frame in {source} (or in the given range).")


def kept_after_stop(args) -> str | None:
    from pathlib import Path

    ckpt = Path(str(args.output) + ".checkpoints") / "last.pt"
    if ckpt.is_file():
        return f"the adaptation so far is kept in {ckpt}: run the same command with --resume to continue"
    return None
