"""Label map <-> segmentation node (segment ids, names, colours), closed surfaces, ``.seg.nrrd`` export.

A label map is an integer array ``[k, j, i]`` with an IJK->RAS matrix; a label list is
``[{"value": int, "name": str, "color": [r, g, b]}]`` as in the model card. The segmentation
stores all segments in ONE shared binary labelmap (each segment's label value = its value in
the label map), which is exact and as compact as Slicer's own ``.seg.nrrd``.
"""
from __future__ import annotations

import os
from pathlib import Path
from collections.abc import Sequence

import numpy as np
import vtk

from SurgicalAICore.errors import InputError
from SurgicalAICore.atomic import atomic_file
from SurgicalAICore.mrml.volumes import image_data_from_array
from SurgicalAICore.mrml.transforms import numpy_from_vtk_matrix, vtk_matrix_from_numpy
from SurgicalAICore.terminology import slicer_terminology_string, terminology_of

BINARY = "Binary labelmap"
SURFACE = "Closed surface"


def register_segmentation_converters() -> None:
    """Register the labelmap <-> closed surface conversion rules (the desktop app's Segmentations
    module does this at start-up; headless, nothing else does). Safe to call repeatedly."""
    import slicer

    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    rules = factory.GetConverterRules()
    present = {rules[n].GetClassName() for n in range(len(rules))} if rules else set()
    for cls in (slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule,
                slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule):
        if cls.__name__ not in present:
            factory.RegisterConverterRule(cls())


def segment_id_for(name: str) -> str:
    """Segment id used for a label name (stable, readable)."""
    return name


def _check_labels(labels: Sequence[dict]) -> None:
    values = [int(e["value"]) for e in labels]
    if any(v < 1 or v > 65535 for v in values) or len(set(values)) != len(values):
        raise InputError("Label values must be unique integers in 1..65535.")
    names = [str(e["name"]) for e in labels]
    if len(set(names)) != len(names):
        raise InputError("Segment names must be unique.")


def new_segmentation_node(label_array: np.ndarray, ijk_to_ras: np.ndarray, labels: Sequence[dict],
                          name: str = "Segmentation", closed_surface: bool = True,
                          reference_volume=None):
    """A segmentation node NOT yet in a scene, with one segment per entry of ``labels``.

    Segments absent from the array are still created (empty) so the output always lists every
    structure the model knows. Call :func:`add_segmentation_to_scene` to show it.
    """
    import slicer  # MRML node classes only

    register_segmentation_converters()
    label_array = np.asarray(label_array)
    if label_array.ndim != 3:
        raise InputError(f"A label map must be 3-D, got shape {label_array.shape}.")
    if not np.issubdtype(label_array.dtype, np.integer):
        raise InputError(f"A label map must hold integers, got {label_array.dtype}.")
    _check_labels(labels)
    from SurgicalAICore.geometry import decompose_ijk_to_ras

    decompose_ijk_to_ras(ijk_to_ras)
    dtype = np.uint8 if max([int(e["value"]) for e in labels] + [0]) < 256 else np.uint16
    known = np.isin(label_array, [int(e["value"]) for e in labels])
    clean = np.where(known, label_array, 0).astype(dtype)

    shared = slicer.vtkOrientedImageData()
    shared.ShallowCopy(image_data_from_array(clean))
    shared.SetImageToWorldMatrix(vtk_matrix_from_numpy(np.asarray(ijk_to_ras, float)))

    node = slicer.vtkMRMLSegmentationNode()
    node.SetName(name)
    segmentation = node.GetSegmentation()
    segmentation.SetSourceRepresentationName(BINARY)
    if reference_volume is not None:
        node.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume)
    else:  # the label map's own grid is the reference (surfaces and exports need one)
        segmentation.SetConversionParameter(
            slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName(),
            slicer.vtkSegmentationConverter.SerializeImageGeometry(shared))
    for entry in sorted(labels, key=lambda e: int(e["value"])):
        segment = slicer.vtkSegment()
        segment.SetName(str(entry["name"]))
        segment.SetColor(*[float(c) for c in entry["color"]])
        segment.SetLabelValue(int(entry["value"]))
        coded = terminology_of(entry)
        if coded is not None:  # Slicer's terminology tag; .seg.nrrd and DICOM SEG carry it
            segment.SetTerminology(slicer_terminology_string(coded))
        segment.AddRepresentation(BINARY, shared)
        segmentation.AddSegment(segment, segment_id_for(str(entry["name"])))
    if closed_surface:
        node.CreateClosedSurfaceRepresentation()
    return node


def add_segmentation_to_scene(scene, node, reference_volume=None):
    """Add a complete segmentation node to ``scene`` with display nodes (and its reference volume link)."""
    scene.AddNode(node)
    node.CreateDefaultDisplayNodes()
    if reference_volume is not None:
        node.SetNodeReferenceID(node.GetReferenceImageGeometryReferenceRole(), reference_volume.GetID())
    return node


def labels_from_segmentation(node) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """(label array [k, j, i], IJK->RAS, label list) of a segmentation node's binary labelmaps.

    Segments keep their label value when they share one labelmap (as ours do); otherwise they
    are numbered in segment order. The grid is the first segment's labelmap geometry, with the
    union of all segments' extents.
    """
    import slicer

    register_segmentation_converters()
    segmentation = node.GetSegmentation()
    ids = [segmentation.GetNthSegmentID(n) for n in range(segmentation.GetNumberOfSegments())]
    if not ids:
        raise InputError(f"Segmentation '{node.GetName()}' has no segments.")
    if not segmentation.ContainsRepresentation(BINARY):
        segmentation.CreateRepresentation(BINARY)
    images = []
    for sid in ids:
        image = slicer.vtkOrientedImageData()
        image.DeepCopy(segmentation.GetSegment(sid).GetRepresentation(BINARY))
        images.append(image)
    matrix = vtk.vtkMatrix4x4()
    images[0].GetImageToWorldMatrix(matrix)
    ijk_to_ras = numpy_from_vtk_matrix(matrix)
    extents = np.array([img.GetExtent() for img in images if not _empty_extent(img.GetExtent())]
                       or [images[0].GetExtent()])
    lo, hi = extents[:, 0::2].min(axis=0), extents[:, 1::2].max(axis=0)
    shape = tuple(int(x) for x in (hi - lo + 1)[::-1])
    if any(s <= 0 for s in shape):
        raise InputError(f"Segmentation '{node.GetName()}' is empty.")
    labels = np.zeros(shape, np.uint16)
    infos: list[dict] = []
    used = set()
    for n, (sid, image) in enumerate(zip(ids, images, strict=False)):
        segment = segmentation.GetSegment(sid)
        value = int(segment.GetLabelValue()) or n + 1
        if value in used:
            value = max(used) + 1
        used.add(value)
        infos.append({"value": value, "name": segment.GetName(), "color": list(segment.GetColor())})
        if _empty_extent(image.GetExtent()):
            continue
        m = vtk.vtkMatrix4x4()
        image.GetImageToWorldMatrix(m)
        if not np.allclose(numpy_from_vtk_matrix(m), ijk_to_ras, atol=1e-6):
            raise InputError("Segments with different labelmap geometries are not supported here; "
                             "export them with a reference volume in Slicer.")
        from SurgicalAICore.mrml.volumes import array_from_image_data

        ext = image.GetExtent()
        arr = array_from_image_data(image)
        mask = arr == segment.GetLabelValue()
        starts = zip(ext[0::2][::-1], lo[::-1], arr.shape, strict=False)
        sl = tuple(slice(e0 - low, e0 - low + s) for e0, low, s in starts)
        labels[sl][mask] = value
    origin_shift = ijk_to_ras @ np.array([lo[0], lo[1], lo[2], 1.0])
    ijk_to_ras = ijk_to_ras.copy()
    ijk_to_ras[:3, 3] = origin_shift[:3]
    dtype = np.uint8 if labels.max(initial=0) < 256 else np.uint16
    return labels.astype(dtype), ijk_to_ras, infos


def _empty_extent(extent) -> bool:
    return extent[1] < extent[0] or extent[3] < extent[2] or extent[5] < extent[4]


def _check_folder(path: Path) -> None:
    if not path.parent.is_dir():
        raise InputError(f"Cannot write {path}: folder {path.parent} does not exist.")
    if not os.access(path.parent, os.W_OK):
        raise InputError(f"Cannot write {path}: folder {path.parent} is not writable.")


def export_seg_nrrd(node, path: str | Path) -> Path:
    """Write a segmentation node as Slicer ``.seg.nrrd`` (segment names, colours, label values kept)."""
    import slicer

    path = Path(path)
    if not path.name.endswith(".seg.nrrd"):
        raise InputError(f"A segmentation file must end in .seg.nrrd: {path.name}")
    _check_folder(path)
    with atomic_file(path, ".seg.nrrd") as tmp:
        storage = slicer.vtkMRMLSegmentationStorageNode()
        storage.SetFileName(str(tmp))
        storage.SetUseCompression(1)
        if not storage.WriteData(node):
            raise InputError(f"Writing the segmentation to {path} failed.")
    return path


def read_seg_nrrd(path: str | Path):
    """A segmentation node (not in a scene) read from a ``.seg.nrrd`` file."""
    import slicer

    path = Path(path)
    if not path.is_file():
        raise InputError(f"Segmentation file not found: {path}")
    import vtk

    register_segmentation_converters()  # without the rules the file's surfaces can never be made
    node = slicer.vtkMRMLSegmentationNode()
    node.SetName(path.name)
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(str(path))
    # Outside a scene the reader logs that it cannot add display nodes; that is expected here.
    shown = vtk.vtkObject.GetGlobalWarningDisplay()
    vtk.vtkObject.GlobalWarningDisplayOff()
    try:
        ok = storage.ReadData(node)
    finally:
        vtk.vtkObject.SetGlobalWarningDisplay(shown)
    if not ok:
        raise InputError(f"Cannot read segmentation file {path}.")
    return node


def segment_names(node) -> dict[str, str]:
    """{segment id: name} of a segmentation node."""
    seg = node.GetSegmentation()
    return {seg.GetNthSegmentID(n): seg.GetNthSegment(n).GetName() for n in range(seg.GetNumberOfSegments())}
