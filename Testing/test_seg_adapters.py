"""Scene adapters: label map <-> segmentation node, .seg.nrrd export read back with slicerio, .mrb save and reload."""

import numpy as np
import pytest
import slicerio

from SurgicalAICore.errors import InputError
from SurgicalAICore.geometry import LPS_TO_RAS, compose_ijk_to_ras
from SurgicalAICore.mrml.bundle import load_scene_bundle, save_scene_bundle
from SurgicalAICore.mrml.segmentations import (
    add_segmentation_to_scene,
    export_seg_nrrd,
    labels_from_segmentation,
    new_segmentation_node,
    read_seg_nrrd,
    segment_names,
)
from SegmentationAILib.statistics import label_statistics, rows_from_table_node, statistics_table_node
from SurgicalAICore.mrml.volumes import add_volume_node, array_and_geometry

INFO = [
    {"value": 1, "name": "liver", "color": [0.9, 0.5, 0.4]},
    {"value": 2, "name": "spleen", "color": [0.6, 0.2, 0.4]},
    {"value": 3, "name": "vertebrae", "color": [0.95, 0.9, 0.8]},
    {"value": 4, "name": "absent organ", "color": [0.1, 0.2, 0.3]},
]


def oblique_geometry():
    """Anisotropic spacing, a rotation about an oblique axis, and an off-centre origin (RAS)."""
    axis = np.array([1.0, 2.0, 0.5]) / np.linalg.norm([1.0, 2.0, 0.5])
    angle = 0.4
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rotation = np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k
    return compose_ijk_to_ras([0.7, 1.3, 2.9], rotation, [-12.5, 40.25, 3.0])


def random_labels(shape=(14, 21, 17), seed=1):
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint8)
    labels[2:9, 3:15, 4:12] = 1
    labels[9:13, 10:20, 1:7] = 2
    labels[rng.random(shape) < 0.05] = 3  # scattered voxels: any off-by-one shows up
    labels[0, 0, 0] = 3
    return labels


def test_label_map_round_trip_exact(scene):
    labels, ijk_to_ras = random_labels(), oblique_geometry()
    node = new_segmentation_node(labels, ijk_to_ras, INFO, name="Seg")
    add_segmentation_to_scene(scene, node)
    assert segment_names(node) == {
        "liver": "liver",
        "spleen": "spleen",
        "vertebrae": "vertebrae",
        "absent organ": "absent organ",
    }
    back, geometry, info = labels_from_segmentation(node)
    assert np.array_equal(back, labels)
    assert np.allclose(geometry, ijk_to_ras, atol=1e-9)
    assert [(e["value"], e["name"]) for e in info] == [(e["value"], e["name"]) for e in INFO]
    for got, want in zip(info, INFO, strict=False):
        assert np.allclose(got["color"], want["color"], atol=1e-6)
    seg = node.GetSegmentation()
    assert seg.ContainsRepresentation("Closed surface")
    assert seg.GetSegment("liver").GetRepresentation("Closed surface").GetNumberOfPoints() > 0


def test_segmentation_rejects_bad_label_maps():
    with pytest.raises(InputError, match="3-D"):
        new_segmentation_node(np.zeros((4, 4), np.uint8), np.eye(4), INFO)
    with pytest.raises(InputError, match="integers"):
        new_segmentation_node(np.zeros((4, 4, 4), np.float32), np.eye(4), INFO)
    with pytest.raises(InputError, match="unique"):
        new_segmentation_node(np.zeros((4, 4, 4), np.uint8), np.eye(4), [*INFO, INFO[0]])


def test_seg_nrrd_export_read_back_with_slicerio(tmp_path):
    labels, ijk_to_ras = random_labels(), oblique_geometry()
    node = new_segmentation_node(labels, ijk_to_ras, INFO, closed_surface=False)
    path = export_seg_nrrd(node, tmp_path / "out.seg.nrrd")
    assert [p.name for p in tmp_path.iterdir()] == ["out.seg.nrrd"]  # no temporary left behind
    seg = slicerio.read_segmentation(str(path))
    by_name = {s["name"]: s for s in seg["segments"]}
    assert set(by_name) == {e["name"] for e in INFO}
    for e in INFO:
        assert by_name[e["name"]]["labelValue"] == e["value"]
        assert np.allclose(by_name[e["name"]]["color"], e["color"], atol=1e-4)
    # slicerio voxels are [i, j, k] on the file's grid, offset into the reference extent
    voxels = seg["voxels"]
    offset = seg.get("referenceImageExtentOffset", [0, 0, 0])
    full = np.zeros(labels.shape[::-1], voxels.dtype)
    full[
        offset[0] : offset[0] + voxels.shape[0],
        offset[1] : offset[1] + voxels.shape[1],
        offset[2] : offset[2] + voxels.shape[2],
    ] = voxels
    assert np.array_equal(full.transpose(2, 1, 0), labels)
    ijk_to_lps = np.asarray(seg["ijkToLPS"], float)
    origin_shift = np.eye(4)
    origin_shift[:3, 3] = -np.asarray(offset, float)
    assert np.allclose(LPS_TO_RAS @ ijk_to_lps @ origin_shift, ijk_to_ras, atol=1e-6)
    # and our own reader gives the same label map back
    back, geometry, _ = labels_from_segmentation(read_seg_nrrd(path))
    assert np.array_equal(back, labels) and np.allclose(geometry, ijk_to_ras, atol=1e-6)


def test_seg_nrrd_export_errors(tmp_path):
    node = new_segmentation_node(random_labels(), np.eye(4), INFO, closed_surface=False)
    with pytest.raises(InputError, match=r"seg.nrrd"):
        export_seg_nrrd(node, tmp_path / "out.nrrd")
    with pytest.raises(InputError, match="does not exist"):
        export_seg_nrrd(node, tmp_path / "missing" / "out.seg.nrrd")


def test_scene_bundle_save_and_reload(scene, tmp_path):
    import slicer
    import vtk

    labels, ijk_to_ras = random_labels(), oblique_geometry()
    ct = np.random.default_rng(0).normal(0, 100, labels.shape).astype(np.int16)
    volume = add_volume_node(scene, ct, ijk_to_ras, name="CT")
    add_segmentation_to_scene(scene, new_segmentation_node(labels, ijk_to_ras, INFO, reference_volume=volume), volume)
    table = statistics_table_node(label_statistics(labels, {e["value"]: e["name"] for e in INFO}, 0.002))
    scene.AddNode(table)
    model = slicer.vtkMRMLModelNode()
    sphere = vtk.vtkSphereSource()
    sphere.Update()
    model.SetAndObservePolyData(sphere.GetOutput())
    model.SetName("Sphere")
    scene.AddNode(model)
    transform = slicer.vtkMRMLLinearTransformNode()
    transform.SetName("Shift")
    matrix = vtk.vtkMatrix4x4()
    matrix.SetElement(0, 3, 12.5)
    transform.SetMatrixTransformToParent(matrix)
    scene.AddNode(transform)
    sequence = slicer.vtkMRMLSequenceNode()
    scene.AddNode(sequence)
    for n in range(3):
        item = slicer.vtkMRMLScalarVolumeNode()
        item.SetAndObserveImageData(volume.GetImageData())
        sequence.SetDataNodeAtValue(item, str(n))
    browser = slicer.vtkMRMLSequenceBrowserNode()
    scene.AddNode(browser)
    browser.SetAndObserveMasterSequenceNodeID(sequence.GetID())

    path = save_scene_bundle(scene, tmp_path / "scene.mrb")
    assert [p.name for p in tmp_path.iterdir()] == ["scene.mrb"]
    loaded = load_scene_bundle(path)
    for cls in (
        "vtkMRMLSegmentationNode",
        "vtkMRMLTableNode",
        "vtkMRMLModelNode",
        "vtkMRMLLinearTransformNode",
        "vtkMRMLSequenceNode",
        "vtkMRMLSequenceBrowserNode",
    ):
        assert loaded.GetNodesByClass(cls).GetNumberOfItems() == scene.GetNodesByClass(cls).GetNumberOfItems(), cls
    ct_back, geometry = array_and_geometry(loaded.GetFirstNodeByName("CT"))
    assert np.array_equal(ct_back, ct) and np.allclose(geometry, ijk_to_ras, atol=1e-5)
    back, _, info = labels_from_segmentation(loaded.GetFirstNodeByClass("vtkMRMLSegmentationNode"))
    assert np.array_equal(back, labels) and [e["name"] for e in info] == [e["name"] for e in INFO]
    assert rows_from_table_node(loaded.GetFirstNodeByClass("vtkMRMLTableNode"))[1]["name"] == "spleen"
    assert (
        loaded.GetFirstNodeByClass("vtkMRMLModelNode").GetPolyData().GetNumberOfPoints()
        == sphere.GetOutput().GetNumberOfPoints()
    )
    shifted = vtk.vtkMatrix4x4()
    loaded.GetFirstNodeByName("Shift").GetMatrixTransformToParent(shifted)
    assert shifted.GetElement(0, 3) == pytest.approx(12.5)
    assert loaded.GetFirstNodeByClass("vtkMRMLSequenceNode").GetNumberOfDataNodes() == 3


def test_scene_bundle_bad_paths(scene, tmp_path):
    with pytest.raises(InputError, match=r".mrb"):
        save_scene_bundle(scene, tmp_path / "scene.zip")
    with pytest.raises(InputError, match=r"not writable|missing"):
        save_scene_bundle(scene, tmp_path / "no" / "scene.mrb")
