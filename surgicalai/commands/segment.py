"""``surgicalai segment INPUT -o OUTPUT``: segment an image file or DICOM series folder.

OUTPUT ending in ``.seg.nrrd`` gives a Slicer segmentation (segment names and colours from the
model card); ``.nii.gz``/``.nii``/``.nrrd``/``.mha`` gives a label image. A statistics CSV
(volume in mL per structure) is written beside it as ``<OUTPUT stem>_statistics.csv``.
"""
from __future__ import annotations

import sys
from pathlib import Path

from SurgicalAICore.panel.choices import Device, values

HELP = "segment a CT/MR image file or DICOM series folder with a U-Net model"
OUTPUT_SUFFIXES = (".seg.nrrd", ".nii.gz", ".nii", ".nrrd", ".mha")


def add_arguments(parser) -> None:
    parser.add_argument("input", help="image file (NIfTI, NRRD, MHA/MHD) or DICOM series folder")
    parser.add_argument("-o", "--output", required=True, help="output .seg.nrrd (segmentation) or .nii.gz (label map)")
    parser.add_argument("--model", default=None, help="model folder (default: the bundled abdomen-ct-unet)")
    # no argparse choices: the command's own check says what is wrong in one line (exit code 2)
    parser.add_argument("--device", default="auto", help=", ".join(values(Device)))
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


def run(args) -> int:
    from SurgicalAICore.image_io import check_output_path, read_image, write_image
    from SurgicalAICore.progress import tqdm_callback
    from SegmentationAILib.segmenter import SegmentationOptions, resolve_models, segment_image
    from SegmentationAILib.statistics import label_statistics, write_statistics_csv

    output = check_output_path(args.output, OUTPUT_SUFFIXES)
    stats_path = statistics_path_for(output)
    image = read_image(args.input)
    options = SegmentationOptions(device=args.device, tta=False if args.no_tta else None,
                                  clahe=args.clahe, denoise=args.denoise)
    models = resolve_models(args.model, args.device)
    progress = None if args.quiet else tqdm_callback("segment")
    labels_image = segment_image(image, models, options, progress=progress,
                                 notify=lambda message: print(f"surgicalai segment: {message}", file=sys.stderr))
    labels = models[0].labels
    if output.name.lower().endswith(".seg.nrrd"):
        from SurgicalAICore.geometry import array_from_sitk
        from SurgicalAICore.mrml.segmentations import export_seg_nrrd, new_segmentation_node

        array, ijk_to_ras = array_from_sitk(labels_image)
        node = new_segmentation_node(array, ijk_to_ras, labels, name=output.name[:-9], closed_surface=False)
        export_seg_nrrd(node, output)
    else:
        write_image(labels_image, output)
    rows = label_statistics(labels_image, {int(e["value"]): e["name"] for e in labels})
    write_statistics_csv(rows, stats_path)
    found = [r for r in rows if r["voxels"]]
    print(f"segmentation: {output}")
    print(f"statistics:   {stats_path}")
    print("  " + ", ".join(f"{r['name']} {r['volume_ml']:.1f} mL" for r in found) if found else "  no structure found")
    return 0
