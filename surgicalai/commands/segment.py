"""``surgicalai segment INPUT... -o OUTPUT``: segment image files or DICOM series folders.

One input: OUTPUT ending in ``.seg.nrrd`` gives a Slicer segmentation (segment names, colours and
SNOMED-CT terminology); ``.dcm`` a DICOM SEG (for a DICOM series input, with ``highdicom``);
``.nii.gz``/``.nii``/``.nrrd``/``.mha`` gives a label image. A statistics CSV
(volume in mL per structure) is written beside it as ``<OUTPUT stem>_statistics.csv``.

Several inputs, or a folder of cases: OUTPUT is a folder that gets ``<case>.seg.nrrd`` (or
``--format``) per case and ``summary.csv``; a case that fails is reported and the others go on
(exit code 0 all done, 1 some failed, 2 none could run). ``--model`` takes this extension's model
folders, nnU-Net v2 result folders and MONAI bundles.
"""
from __future__ import annotations

import sys
from pathlib import Path

from SurgicalAICore.panel.choices import Device, values

HELP = "segment CT/MR image files, DICOM series folders or a folder of cases with a U-Net model"
OUTPUT_SUFFIXES = (".seg.nrrd", ".nii.gz", ".nii", ".nrrd", ".mha", ".dcm")


def add_arguments(parser) -> None:
    parser.add_argument("input", nargs="+", help="image file(s) (NIfTI, NRRD, MHA/MHD), DICOM series folder(s), "
                                                 "or a folder of cases")
    parser.add_argument("-o", "--output", required=True,
                        help="output .seg.nrrd (segmentation), .nii.gz (label map) or .dcm (DICOM SEG, for a DICOM "
                             "series input); a folder for several cases")
    parser.add_argument("--model", default=None, help="model folder, nnU-Net v2 result folder or MONAI bundle "
                                                      "(default: the bundled abdomen-ct-unet)")
    # no argparse choices: the command's own check says what is wrong in one line (exit code 2)
    parser.add_argument("--device", default="auto", help=", ".join(values(Device)))
    parser.add_argument("--no-tta", action="store_true", help="no mirroring test-time augmentation (faster)")
    parser.add_argument("--clahe", action="store_true", default=None, help="contrast-limited histogram equalisation")
    parser.add_argument("--denoise", action="store_true", default=None, help="edge-preserving denoising")
    parser.add_argument("--format", default=".seg.nrrd", choices=(".seg.nrrd", ".nii.gz", ".nrrd", ".mha", ".dcm"),
                        help="result format per case in batch mode")
    parser.add_argument("--jobs", type=int, default=1, help="cases segmented at once in batch mode (processes)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def statistics_path_for(output: Path) -> Path:
    from SegmentationAILib.batch import statistics_path_for as path_for

    return path_for(output)


def _is_batch(args) -> bool:
    from SurgicalAICore.image_io import dicom_series_ids, has_suffix

    if len(args.input) > 1:
        return True
    path = Path(args.input[0])
    if path.is_dir():
        return not dicom_series_ids(path)
    return not has_suffix(args.output, OUTPUT_SUFFIXES) and Path(args.output).is_dir()


def _run_batch(args, options) -> int:
    from SegmentationAILib.batch import SUMMARY_NAME, print_result, segment_cases

    if args.jobs < 1:
        from SurgicalAICore.errors import InputError

        raise InputError(f"--jobs must be at least 1, got {args.jobs}.")
    results = segment_cases(args.input, args.output, args.model, options, suffix=args.format, jobs=args.jobs,
                            report=print_result)
    failed = [r for r in results if not r.ok]
    print(f"summary: {Path(args.output) / SUMMARY_NAME} ({len(results) - len(failed)} done, {len(failed)} failed)")
    if failed and len(failed) == len(results):
        return 2
    return 1 if failed else 0


def run(args) -> int:
    from SegmentationAILib.batch import write_result
    from SurgicalAICore.errors import InputError
    from SurgicalAICore.image_io import check_output_path, read_image
    from SurgicalAICore.progress import tqdm_callback
    from SegmentationAILib.segmenter import SegmentationOptions, resolve_models, segment_image
    from SurgicalAICore.validation import check_output_not_input

    options = SegmentationOptions(device=args.device, tta=False if args.no_tta else None,
                                  clahe=args.clahe, denoise=args.denoise)
    if _is_batch(args):
        return _run_batch(args, options)
    output = check_output_path(args.output, OUTPUT_SUFFIXES)
    if output.name.lower().endswith(".dcm") and not Path(args.input[0]).is_dir():
        raise InputError(f"{output.name}: a DICOM SEG is written only for a DICOM series input.")
    stats_path = statistics_path_for(output)
    for out in (output, stats_path):
        check_output_not_input(out, [args.input[0], args.model], "output")
    from SurgicalAICore.locks import run_lock

    # two runs onto one output would each move in their own pair: a segmentation with the other's CSV
    with run_lock(output):
        image = read_image(args.input[0])
        models = resolve_models(args.model, args.device)
        progress = None if args.quiet else tqdm_callback("segment")
        labels_image = segment_image(image, models, options, progress=progress,
                                     notify=lambda message: print(f"surgicalai segment: {message}", file=sys.stderr))
        rows = write_result(labels_image, models[0].labels, output, source=Path(args.input[0]),
                            model_name=models[0].name)
    found = [r for r in rows if r["voxels"]]
    print(f"segmentation: {output}")
    print(f"statistics:   {stats_path}")
    print("  " + ", ".join(f"{r['name']} {r['volume_ml']:.1f} mL" for r in found) if found else "  no structure found")
    return 0
