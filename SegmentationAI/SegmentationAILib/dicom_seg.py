"""DICOM SEG export (with ``highdicom``) of a label map made from a DICOM series.

Each label becomes a segment with its SNOMED-CT category/type (and left/right modifier) from
:mod:`terminology` (unknown names: "Tissue"), its colour, and this extension as the automatic
algorithm. The label map must be on the series' own grid (``segment_image`` returns it there);
frames refer to the series' files in the order SimpleITK read them. Written atomically.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from SurgicalAICore.errors import InputError
from SurgicalAICore.image_io import dicom_series_ids
from SurgicalAICore.atomic import atomic_file
from SurgicalAICore.terminology import terminology_of

TISSUE = ("SCT", "85756007", "Tissue")


def _code(code: Sequence[str]):
    from highdicom.sr import CodedConcept

    scheme, value, meaning = code
    return CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def _description(entry: dict, number: int, algorithm):
    import highdicom as hd

    coded = terminology_of(entry) or {"category": TISSUE, "type": TISSUE}
    rgb = [round(255 * float(c)) for c in entry["color"]]
    desc = hd.seg.SegmentDescription(
        segment_number=number, segment_label=str(entry["name"])[:64],
        segmented_property_category=_code(coded["category"]), segmented_property_type=_code(coded["type"]),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm,
        display_color=hd.color.CIELabColor.from_rgb(*rgb))
    if "modifier" in coded:
        desc.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
            _code(coded["modifier"])]
    return desc


def write_dicom_seg(labels_image: sitk.Image, labels: Sequence[dict], dicom_folder: str | Path, output: str | Path,
                    model_name: str = "SlicerSurgicalAI", model_version: str = "") -> Path:
    """Write ``labels_image`` (on the series grid) as a DICOM SEG that refers to the series in ``dicom_folder``."""
    try:
        import highdicom as hd
    except ImportError:
        raise InputError("DICOM SEG export needs the 'highdicom' package (pip install highdicom==0.28.2).") from None
    import pydicom
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    folder, output = Path(dicom_folder), Path(output)
    ids = dicom_series_ids(folder) if folder.is_dir() else ()
    if len(ids) != 1:
        raise InputError(f"A DICOM SEG needs the input to be one DICOM series; {folder} is not.")
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), ids[0])
    array = sitk.GetArrayFromImage(labels_image)
    if array.shape[0] != len(files):
        raise InputError(f"The label map has {array.shape[0]} slices but the series {len(files)} files.")
    sources = [pydicom.dcmread(f) for f in files]
    ordered = sorted(labels, key=lambda e: int(e["value"]))
    relabel = np.zeros(max(int(e["value"]) for e in ordered) + 1, np.uint8)
    for number, entry in enumerate(ordered, 1):  # DICOM segment numbers run 1..n
        relabel[int(entry["value"])] = number
    pixels = relabel[np.clip(array, 0, len(relabel) - 1)]
    algorithm = hd.AlgorithmIdentificationSequence(name=model_name[:64], version=model_version[:64] or "1",
                                                   family=codes.cid7162.ArtificialIntelligence)
    try:
        seg = _segmentation(hd, sources, pixels, [_description(e, n, algorithm) for n, e in enumerate(ordered, 1)],
                            model_name, generate_uid)
    except ValueError as error:  # highdicom checks the source series against the SEG IOD
        raise InputError(f"Cannot make a DICOM SEG for {folder}: {str(error).splitlines()[0]}") from None
    with atomic_file(output, ".dcm") as tmp:
        seg.save_as(tmp)
    return output


def _segmentation(hd, sources, pixels, descriptions, model_name, generate_uid):
    return hd.seg.Segmentation(
        source_images=sources, pixel_array=pixels, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=generate_uid(), series_number=900, sop_instance_uid=generate_uid(), instance_number=1,
        manufacturer="SlicerSurgicalAI", manufacturer_model_name=model_name[:64], software_versions="0.1.0",
        device_serial_number="0", series_description=f"{model_name} segmentation"[:64])
