"""Segment a volume node of an MRML scene into a new segmentation node with a statistics table.

Everything is computed and built off-scene first; nodes are added (or the given output node
updated) only once the whole result exists, so on an error or cancel the scene is unchanged.
"""
from __future__ import annotations

from typing import Any
from collections.abc import Callable, Mapping

import numpy as np
import SimpleITK as sitk

from SurgicalAICore.errors import InputError
from SurgicalAICore.geometry import sitk_from_array
from SegmentationAILib.preprocessing import check_4d_array, check_image
from SurgicalAICore.progress import CancelToken, Progress, ProgressCallback
from SurgicalAICore.mrml.segmentations import add_segmentation_to_scene, new_segmentation_node
from SegmentationAILib.segmenter import ModelsArg, SegmentationOptions, resolve_models, segment_image
from SegmentationAILib.statistics import label_statistics, statistics_table_node

STATISTICS_ROLE = "SurgicalAIStatistics"


def image_from_volume_node(volume_node) -> sitk.Image:
    """A checked SimpleITK image (LPS) of a scalar volume node; clear errors for anything else."""
    from SurgicalAICore.mrml.volumes import array_and_geometry

    if volume_node is None:
        raise InputError("No input volume was selected.")
    if not volume_node.IsA("vtkMRMLScalarVolumeNode"):
        raise InputError(f"'{volume_node.GetName()}' is not a scalar volume ({volume_node.GetClassName()}).")
    if volume_node.IsA("vtkMRMLLabelMapVolumeNode"):
        raise InputError(f"'{volume_node.GetName()}' is a label map, not an image to segment.")
    image_data = volume_node.GetImageData()
    if image_data is None or image_data.GetNumberOfPoints() == 0:
        raise InputError(f"Volume '{volume_node.GetName()}' is empty (no voxels).")
    array, ijk_to_ras = array_and_geometry(volume_node)
    what = f"Volume '{volume_node.GetName()}'"
    check_4d_array(array, what)
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise InputError(f"{what} has non-numeric voxels ({array.dtype}).")
    image = sitk_from_array(array, ijk_to_ras)
    check_image(image, what)
    return image


def statistics_table_of(segmentation_node):
    """The statistics table node made for a segmentation node by :func:`segment_volume_node` (or None)."""
    return segmentation_node.GetNodeReference(STATISTICS_ROLE)


def segment_volume_node(scene, volume_node, model: ModelsArg = None,
                        options: None | SegmentationOptions | Mapping[str, Any] = None,
                        progress: ProgressCallback | Progress | None = None,
                        cancel: CancelToken | None = None, output_node=None, name: str | None = None,
                        notify: Callable[[str], None] | None = None):
    """Segment ``volume_node`` and return the segmentation node (new, unless ``output_node`` is given).

    The node has the model's segment names and colours, a closed-surface representation, the
    input volume as reference geometry, and a statistics table node (volume in mL per segment)
    reachable with :func:`statistics_table_of`.
    """
    if scene is None:
        raise InputError("No MRML scene was given.")
    prog = Progress.of(progress, cancel)
    image = read_input(volume_node, output_node)
    opts = SegmentationOptions.of(options)
    built, rows = compute_segmentation(image, resolve_models(model, opts.device), opts, prog,
                                       name or f"{volume_node.GetName()} segmentation", notify)
    prog.step(0.97, "adding the results to the scene")
    node = commit_segmentation(scene, built, rows, volume_node, output_node)
    prog.step(1.0, f"done: {sum(r['voxels'] > 0 for r in rows)} of {len(rows)} structures found")
    return node


def read_input(volume_node, output_node=None) -> sitk.Image:
    """The scene part before the work (GUI thread): a checked copy of the volume; the output node checked."""
    image = image_from_volume_node(volume_node)
    if output_node is not None and not output_node.IsA("vtkMRMLSegmentationNode"):
        raise InputError(f"Output '{output_node.GetName()}' is not a segmentation node.")
    return image


def compute_segmentation(image: sitk.Image, models, opts: SegmentationOptions, prog: Progress, name: str,
                         notify: Callable[[str], None] | None = None):
    """The work, on any thread: no scene is touched. Returns an off-scene segmentation node (with its
    3-D surfaces) and the statistics rows."""
    from SurgicalAICore.geometry import array_from_sitk

    labels_image = segment_image(image, models, opts, prog.sub(0.0, 0.85), notify=notify)
    prog.step(0.87, "building the segmentation and 3-D surfaces")
    label_array, ijk_to_ras = array_from_sitk(labels_image)
    labels = models[0].labels
    built = new_segmentation_node(label_array, ijk_to_ras, labels, name=name, closed_surface=True)
    rows = label_statistics(labels_image, {int(e["value"]): e["name"] for e in labels})
    prog.step(0.95, "segmentation built")
    return built, rows


def commit_segmentation(scene, built, rows, volume_node, output_node=None):
    """The scene part after the work (GUI thread): add ``built`` (or copy it into ``output_node``) and its
    statistics table; returns the segmentation node in the scene."""
    if output_node is None:
        built.SetName(scene.GenerateUniqueName(built.GetName()))
        built.SetReferenceImageGeometryParameterFromVolumeNode(volume_node)
        node = add_segmentation_to_scene(scene, built, volume_node)
    else:
        node = output_node
        node.GetSegmentation().DeepCopy(built.GetSegmentation())
        node.SetReferenceImageGeometryParameterFromVolumeNode(volume_node)
        if node.GetDisplayNode() is None:
            node.CreateDefaultDisplayNodes()
        node.Modified()
    table = statistics_table_node(rows, name=scene.GenerateUniqueName(f"{node.GetName()} statistics"))
    old = statistics_table_of(node)
    if old is not None and old.GetScene() is scene:
        scene.RemoveNode(old)
    scene.AddNode(table)
    node.SetNodeReferenceID(STATISTICS_ROLE, table.GetID())
    return node
