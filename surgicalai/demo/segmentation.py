"""Demo step: segment the bundled sample CT in the demo's scene and write files, pictures and numbers."""

from __future__ import annotations

import math
import time

import numpy as np
import SimpleITK as sitk

SECTION = "Segmentation"


def run_demo_step(ctx) -> None:
    """Segment the sample CT into ``ctx.scene``; hand the CT and segmentation nodes to later steps.

    Writes ``segmentation.seg.nrrd``, ``segmentation_labels.nii.gz``, ``segmentation_statistics.csv``
    and axial/coronal overlay and 3-D surface pictures to ``ctx.out_dir``.
    """
    from SurgicalAICore.figures import overlay_figure, render_segmentation_3d
    from SurgicalAICore.geometry import array_from_sitk
    from SurgicalAICore.image_io import read_image, write_image
    from SurgicalAICore.resources import sample_ct_path
    from SegmentationAILib.sample_reference import sample_reference_labels
    from SegmentationAILib.scene_segmentation import segment_volume_node, statistics_table_of
    from SurgicalAICore.mrml.segmentations import export_seg_nrrd
    from SegmentationAILib.seg_model import load_segmentation_model
    from SegmentationAILib.statistics import dice_scores, rows_from_table_node, write_statistics_csv
    from SurgicalAICore.mrml.volumes import add_volume_node

    out = ctx.out_dir
    ct_path = sample_ct_path()
    ct = read_image(ct_path)
    array, ijk_to_ras = array_from_sitk(ct)
    volume = add_volume_node(ctx.scene, array, ijk_to_ras, name="Sample CT")
    model = load_segmentation_model(None, device=ctx.device)
    ctx.say(f"segmenting {ct_path.name} {ct.GetSize()} with model '{model.name}' on {model.device}")

    last = [-1]

    def progress(fraction: float, message: str) -> None:
        if int(fraction * 4) > last[0]:
            last[0] = int(fraction * 4)
            ctx.say(f"  {fraction:4.0%} {message}")

    start = time.perf_counter()
    node = segment_volume_node(
        ctx.scene,
        volume,
        model,
        {"device": ctx.device},
        progress=progress,
        name="Sample CT segmentation",
        notify=ctx.say,
    )
    seconds = time.perf_counter() - start

    seg_path = export_seg_nrrd(node, out / "segmentation.seg.nrrd")
    ctx.file("segmentation (Slicer .seg.nrrd)", seg_path)
    from SurgicalAICore.mrml.segmentations import labels_from_segmentation

    labels_array, label_geometry, _ = labels_from_segmentation(node)
    label_image = _label_image_on(ct, labels_array, label_geometry)
    label_path = write_image(label_image, out / "segmentation_labels.nii.gz")
    ctx.file("label map (NIfTI)", label_path)
    rows = rows_from_table_node(statistics_table_of(node))
    csv_path = write_statistics_csv(rows, out / "segmentation_statistics.csv")
    ctx.file("volume per structure (CSV)", csv_path)

    info = model.labels
    reference = sample_reference_labels()
    dice = dice_scores(
        sitk.GetArrayFromImage(label_image), sitk.GetArrayFromImage(reference), [e["value"] for e in info]
    )
    numbers = ctx.numbers.setdefault(SECTION, {})
    numbers["model"] = model.name
    numbers["device"] = str(model.device)
    numbers["segmentation time incl. TTA and surfaces [s]"] = round(seconds, 2)
    for row in rows:
        numbers[f"volume {row['name']} [mL]"] = round(row["volume_ml"], 1)
    for e in info:
        d = dice[int(e["value"])]
        numbers[f"Dice {e['name']} (vs reference; training case)"] = None if math.isnan(d) else round(d, 3)
    valid = [d for d in dice.values() if not math.isnan(d)]
    numbers["mean Dice (training case, not a generalisation estimate)"] = (
        round(float(np.mean(valid)), 3) if valid else None
    )

    for view in ("axial", "coronal"):
        path = overlay_figure(
            ct,
            label_image,
            info,
            out / f"segmentation_{view}.png",
            view=view,
            title=f"{model.name} on the sample CT ({view})",
        )
        ctx.picture(f"Segmentation of the sample CT, {view} slices", path)
    path = render_segmentation_3d(node, out / "segmentation_3d.png")
    ctx.picture("Segmented structures as 3-D surfaces (anterior view)", path)

    ctx.shared["ct_volume_node"] = volume
    ctx.shared["segmentation_node"] = node
    ctx.shared["ct_path"] = ct_path
    ctx.shared["label_path"] = label_path


def _label_image_on(ct: sitk.Image, labels_array: np.ndarray, ijk_to_ras: np.ndarray) -> sitk.Image:
    """The segmentation's labels on the CT grid (the segmentation may be cropped to its extent)."""
    from SurgicalAICore.geometry import sitk_from_array
    from SegmentationAILib.preprocessing import resample_like

    image = sitk_from_array(labels_array.astype(np.uint8), ijk_to_ras)
    return resample_like(image, ct, sitk.sitkNearestNeighbor, 0)
