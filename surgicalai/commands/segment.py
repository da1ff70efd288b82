"""``surgicalai segment INPUT -o OUTPUT``: segment an image file or DICOM series folder.

OUTPUT ending in ``.seg.nrrd`` gives a Slicer segmentation (segment names and colours from the
model card); ``.nii.gz``/``.nii``/``.nrrd``/``.mha`` gives a label image. A statistics CSV
(volume in mL per structure) is written beside it as ``<OUTPUT stem>_statistics.csv``.
"""
from __future__ import annotations

import sys
from pathlib import Path

HELP = "segment a CT/MR image file or DICOM series folder with a U-Net model"
OUTPUT_SUFFIXES = (".seg.nrrd", ".nii.gz", ".nii", ".nrrd", ".mha")


def add_arguments(parser) -> None:
    parser.add_argument("input", help="image file (NIfTI, NRRD, MHA/MHD) or DICOM series folder")
    parser.add_argument("-o", "--output", required=True, help="output .seg.nrrd (segmentation) or .nii.gz (label map)")
    parser.add_argument("--model", default=None, help="model folder (default: the bundled abdomen-ct-unet)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--no-tta", action="store_true", help="no mirroring test-time augmentation (faster)")
    parser.add_argument("--clahe", action="store_true", default=None, help="contrast-limited histogram equalisation")
    parser.add_argument("--denoise", action="store_true", default=None, help="edge-preserving denoising")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def statistics_path_for(output: Path) -> Path:
    name = output.name
    for suffix in OUTPUT_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return output.with_name(f"{name}_statistics.csv")


def _write_outputs(labels_image, labels, output: Path, stats_path: Path) -> list:
    """The label result and its statistics CSV appear together or not at all; an error names the real
    output, never the temporary file."""
    from SurgicalAICore.atomic import atomic_files
    from SurgicalAICore.errors import InputError, SurgicalAIError
    from SurgicalAICore.image_io import write_image
    from SegmentationAILib.statistics import label_statistics, write_statistics_csv

    seg_nrrd = output.name.lower().endswith(".seg.nrrd")
    suffix = ".seg.nrrd" if seg_nrrd else next(s for s in OUTPUT_SUFFIXES if output.name.lower().endswith(s))
    rows = label_statistics(labels_image, {int(e["value"]): e["name"] for e in labels})
    with atomic_files([output, stats_path], [suffix, ".csv"]) as (tmp_out, tmp_csv):
        try:
            if seg_nrrd:
                from SurgicalAICore.geometry import array_from_sitk
                from SurgicalAICore.mrml.segmentations import export_seg_nrrd, new_segmentation_node

                array, ijk_to_ras = array_from_sitk(labels_image)
                node = new_segmentation_node(array, ijk_to_ras, labels, name=output.name[:-9], closed_surface=False)
                export_seg_nrrd(node, tmp_out)
            else:
                write_image(labels_image, tmp_out)
        except (SurgicalAIError, OSError) as error:
            raise InputError(f"Writing the segmentation to {output} failed; nothing was written "
                             f"({type(error).__name__}).") from None
        try:
            write_statistics_csv(rows, tmp_csv)
        except (SurgicalAIError, OSError) as error:
            raise InputError(f"Writing the statistics to {stats_path} failed; nothing was written "
                             f"({type(error).__name__}).") from None
    return rows


def run(args) -> int:
    from SurgicalAICore.image_io import check_output_path, read_image
    from SurgicalAICore.progress import tqdm_callback
    from SurgicalAICore.validation import check_output_not_input
    from SegmentationAILib.segmenter import SegmentationOptions, resolve_models, segment_image

    output = check_output_path(args.output, OUTPUT_SUFFIXES)
    stats_path = statistics_path_for(output)
    for out in (output, stats_path):
        check_output_not_input(out, [args.input, args.model], "output")
    image = read_image(args.input)
    options = SegmentationOptions(device=args.device, tta=False if args.no_tta else None,
                                  clahe=args.clahe, denoise=args.denoise)
    models = resolve_models(args.model, args.device)
    progress = None if args.quiet else tqdm_callback("segment")
    labels_image = segment_image(image, models, options, progress=progress,
                                 notify=lambda message: print(f"surgicalai segment: {message}", file=sys.stderr))
    rows = _write_outputs(labels_image, models[0].labels, output, stats_path)
    found = [r for r in rows if r["voxels"]]
    print(f"segmentation: {output}")
    print(f"statistics:   {stats_path}")
    print("  " + ", ".join(f"{r['name']} {r['volume_ml']:.1f} mL" for r in found) if found else "  no structure found")
    return 0
