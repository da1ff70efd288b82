"""The stereo options of ``surgicalai depth`` (kept here so the depth command only delegates)."""
from __future__ import annotations

from SurgicalAICore.errors import InputError


def add_stereo_arguments(parser) -> None:
    group = parser.add_argument_group("stereo (depth from two views instead of the network)")
    group.add_argument("--stereo-calibration", help="stereo calibration: .yml/.yaml/.xml/.json (K1 D1 K2 D2 R T) "
                                                    "or a folder of Open-CAS/Hamlyn text matrices")
    group.add_argument("--right", help="right view: video file or frame folder (INPUT is then the left view)")
    group.add_argument("--layout", choices=("sbs", "tb", "interlaced"), help="both views packed in INPUT")
    group.add_argument("--depth-range", type=float, nargs=2, default=(20.0, 200.0), metavar=("MIN", "MAX"),
                       help="depth search range in mm (default 20 200)")
    group.add_argument("--stereo-scale", type=float, default=1.0, help="match at this fraction of the size (speed)")
    group.add_argument("--smooth", choices=("none", "guided"), default="none", help="edge-aware disparity filtering")


def stereo_inputs(args):
    """(source, left camera, stereo estimator) for the stereo options; everything checked before any output."""
    from SurgicalDepthLib.stereo.calibration_files import load_stereo_calibration
    from SurgicalDepthLib.stereo.estimator import StereoDepthEstimator
    from SurgicalDepthLib.stereo.matching import StereoSettings
    from SurgicalDepthLib.stereo.sources import open_stereo_source

    if not args.stereo_calibration:
        raise InputError("Stereo input needs --stereo-calibration.")
    if args.camera or args.model:
        raise InputError("--camera and --model belong to the monocular path; stereo uses --stereo-calibration.")
    source = open_stereo_source(args.input, args.right, args.layout, fps=args.fps)
    first = next(iter(source), None)
    if first is None:
        raise InputError(f"{source.name}: no frame was read.")
    calibration = load_stereo_calibration(args.stereo_calibration, (first.width, first.height))
    calibration.check_frames(first.width, first.height)
    settings = StereoSettings(min_depth_mm=args.depth_range[0], max_depth_mm=args.depth_range[1],
                              scale=args.stereo_scale, smoothing=args.smooth)
    estimator = StereoDepthEstimator(calibration, settings)
    estimator.predict_pair(first.rgb, first.right)   # swapped views and size mismatches fail here, before output
    return source, calibration.left, estimator
