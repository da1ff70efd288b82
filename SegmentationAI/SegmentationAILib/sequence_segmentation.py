"""Segment every item of a volume sequence (4-D CT phases, follow-up series loaded as a sequence).

Split like the single-volume path: :func:`read_sequence` reads the items on the caller's thread, the work
segments them off-scene one after the other, and :func:`commit_sequence` adds, on the caller's thread, one
segmentation sequence (same index values as the input, browsed with it where a browser shows the input) and
one table of structure volumes per item. A cancel or a failure on any item adds nothing.
"""

from __future__ import annotations

import SimpleITK as sitk

from SurgicalAICore.errors import InputError

MAX_ITEMS = 500  # a sequence longer than this is a video, not a series to segment


def read_sequence(sequence_node) -> list[tuple[str, sitk.Image]]:
    """``(index value, checked image)`` of every item; one clear line for anything that is not a volume."""
    from SegmentationAILib.scene_segmentation import image_from_volume_node

    if sequence_node is None:
        raise InputError("No input sequence was selected.")
    if not sequence_node.IsA("vtkMRMLSequenceNode"):
        raise InputError(f"'{sequence_node.GetName()}' is not a sequence ({sequence_node.GetClassName()}).")
    count = sequence_node.GetNumberOfDataNodes()
    if count == 0:
        raise InputError(f"Sequence '{sequence_node.GetName()}' has no items.")
    if count > MAX_ITEMS:
        raise InputError(f"Sequence '{sequence_node.GetName()}' has {count} items; at most {MAX_ITEMS} are "
                         "segmented at once.")
    items = []
    for n in range(count):
        value = sequence_node.GetNthIndexValue(n)
        node = sequence_node.GetNthDataNode(n)
        try:
            items.append((value, image_from_volume_node(node)))
        except InputError as error:
            raise InputError(f"Item {n + 1} ({sequence_node.GetIndexName()} {value}) of sequence "
                             f"'{sequence_node.GetName()}': {error}") from None
    return items


def segment_items(items, models, opts, prog, name: str, notify=None) -> list[tuple[str, object, list]]:
    """The work, on any thread: ``(index value, off-scene segmentation node, statistics rows)`` per item."""
    from SegmentationAILib.scene_segmentation import compute_segmentation

    out = []
    for n, (value, image) in enumerate(items):
        sub = prog.sub(n / len(items), (n + 1) / len(items))
        sub.step(0.0, f"item {n + 1} of {len(items)}")
        built, rows = compute_segmentation(image, models, opts, sub, f"{name} {value}", notify)
        out.append((value, built, rows))
    return out


def commit_sequence(scene, input_sequence, results, name: str):
    """Add the segmentation sequence and its volume table to ``scene``; returns the sequence node."""
    import slicer

    from SegmentationAILib.scene_segmentation import STATISTICS_ROLE

    if input_sequence.GetScene() is not scene:
        raise InputError("The input sequence left the scene while segmenting; nothing was added.")
    output = slicer.vtkMRMLSequenceNode()
    output.SetName(scene.GenerateUniqueName(name))
    output.SetIndexName(input_sequence.GetIndexName())
    output.SetIndexUnit(input_sequence.GetIndexUnit())
    output.SetIndexType(input_sequence.GetIndexType())
    for n, (value, built, _) in enumerate(results):
        built.SetReferenceImageGeometryParameterFromVolumeNode(input_sequence.GetNthDataNode(n))
        output.SetDataNodeAtValue(built, value)
    table = volume_table(results, input_sequence.GetIndexName() or "item", f"{output.GetName()} volumes")
    table.SetName(scene.GenerateUniqueName(table.GetName()))
    scene.AddNode(output)
    scene.AddNode(table)
    output.SetNodeReferenceID(STATISTICS_ROLE, table.GetID())
    browse_with_input(scene, input_sequence, output)
    return output


def volume_table(results, index_name: str, name: str):
    """A table node: one row per item, the index value then each structure's volume in mL."""
    import slicer
    import vtk

    table = slicer.vtkMRMLTableNode()
    table.SetName(name)
    index = vtk.vtkStringArray()
    index.SetName(index_name)
    structures = [row["name"] for row in results[0][2]] if results else []
    columns = []
    for structure in structures:
        column = vtk.vtkDoubleArray()
        column.SetName(f"{structure} [mL]")
        columns.append(column)
    for value, _, rows in results:
        index.InsertNextValue(str(value))
        by_name = {row["name"]: row["volume_ml"] for row in rows}
        for structure, column in zip(structures, columns, strict=True):
            column.InsertNextValue(float(by_name.get(structure, 0.0)))
    for column in (index, *columns):
        table.GetTable().AddColumn(column)
    return table


def browse_with_input(scene, input_sequence, output) -> None:
    """Where a sequence browser plays the input, let it play the segmentations in step."""
    for n in range(scene.GetNumberOfNodesByClass("vtkMRMLSequenceBrowserNode")):
        browser = scene.GetNthNodeByClass(n, "vtkMRMLSequenceBrowserNode")
        if browser.IsSynchronizedSequenceNode(input_sequence.GetID(), True):
            browser.AddSynchronizedSequenceNode(output.GetID())
