"""``surgicalai calibrate-stereo PAIRS... -o FILE``: stereo calibration from checkerboard pairs."""
from __future__ import annotations

HELP = "stereo calibration (both intrinsics + left-to-right transform) from checkerboard image pairs"


def add_arguments(parser) -> None:
    parser.add_argument("pairs", nargs="+",
                        help="LEFT RIGHT image pairs (l1 r1 l2 r2 ...), two frame folders / videos (left, right), "
                             "or one packed video / folder with --layout")
    parser.add_argument("-o", "--output", required=True,
                        help="calibration file to write (.yml, .yaml, .xml, .json)")
    parser.add_argument("--pattern", type=int, nargs=2, required=True, metavar=("COLUMNS", "ROWS"),
                        help="inner corners of the checkerboard")
    parser.add_argument("--square", type=float, required=True, help="checkerboard square size (mm)")
    parser.add_argument("--layout", choices=("sbs", "tb", "interlaced"), help="both views in one frame")
    parser.add_argument("--min-pairs", type=int, default=4, help="board pairs needed (default 4)")


def _pairs(args):
    from pathlib import Path

    import cv2

    from SurgicalAICore.errors import InputError

    from SurgicalDepthLib.video.sources import IMAGE_EXTENSIONS, to_rgb8
    from SurgicalDepthLib.stereo.sources import open_stereo_source

    paths = [Path(p) for p in args.pairs]
    if all(p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS for p in paths) and not args.layout:
        if len(paths) % 2:
            raise InputError(f"Give image pairs (left right ...); got an odd number of images ({len(paths)}).")
        pairs = []
        for left, right in zip(paths[0::2], paths[1::2], strict=True):
            views = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in (left, right)]
            if any(v is None for v in views):
                raise InputError(f"Cannot read the pair {left.name}, {right.name}.")
            pairs.append(tuple(to_rgb8(v, str(p), bgr=True) for v, p in zip(views, (left, right), strict=True)))
        return pairs
    if len(paths) == 2 and not args.layout:
        source = open_stereo_source(paths[0], paths[1], max_skew_s=float("inf"))
    elif len(paths) == 1:
        source = open_stereo_source(paths[0], layout=args.layout)
    else:
        raise InputError("Give image pairs, two folders/videos (left right), or one packed input with --layout.")
    with source:
        return [(f.rgb, f.right) for f in source]


def run(args) -> int:
    from pathlib import Path

    from SurgicalAICore.errors import InputError
    from SurgicalAICore.progress import tqdm_callback

    from SurgicalDepthLib.stereo.calibrate import calibrate_stereo
    from SurgicalDepthLib.stereo.calibration_files import SUFFIXES, save_stereo_calibration

    out = Path(args.output)
    if out.suffix.lower() not in SUFFIXES:
        raise InputError(f"Stereo calibration {out.name}: use .json, .yml, .yaml or .xml.")
    if not out.parent.is_dir():
        raise InputError(f"Folder {out.parent} does not exist.")
    result = calibrate_stereo(_pairs(args), tuple(args.pattern), args.square, args.min_pairs,
                              progress=tqdm_callback("calibrate"))
    save_stereo_calibration(result.calibration, out)
    print(result.summary() + f" -> {out}")
    return 0
