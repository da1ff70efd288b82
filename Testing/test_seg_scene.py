"""segment_volume_node on a real MRML scene: result nodes, never overwriting, and bad input leaving the scene
unchanged."""

import numpy as np
import pytest
import SimpleITK as sitk

from SurgicalAICore.errors import InputError, ModelError, OperationCancelled
from SurgicalAICore.geometry import array_from_sitk
from SurgicalAICore.progress import CancelToken
from SegmentationAILib.scene_segmentation import segment_volume_node, statistics_table_of
from SegmentationAILib.seg_model import load_segmentation_model
from SurgicalAICore.mrml.segmentations import labels_from_segmentation
from SegmentationAILib.segmenter import segment_image
from SegmentationAILib.statistics import rows_from_table_node
from SegmentationAILib.synthetic import save_tiny_model, synthetic_ct
from SurgicalAICore.mrml.volumes import add_volume_node, volume_ijk_to_ras


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny").path


@pytest.fixture(scope="module")
def tiny_model(tiny_path):
    return load_segmentation_model(tiny_path, device="cpu")


def ct_node(scene, name="CT", size=(40, 36, 24), spacing=(2.5, 3.0, 3.5)):
    ct, _ = synthetic_ct(size, spacing)
    array, ijk_to_ras = array_from_sitk(ct)
    return add_volume_node(scene, array, ijk_to_ras, name=name), ct


def test_segment_volume_node_builds_complete_result(scene, tiny_model):
    volume, ct = ct_node(scene)
    fractions = []
    node = segment_volume_node(scene, volume, tiny_model, {"tta": False}, progress=lambda f, m: fractions.append(f))
    assert node.GetScene() is scene and node.GetName() == "CT segmentation"
    seg = node.GetSegmentation()
    assert [seg.GetNthSegment(n).GetName() for n in range(seg.GetNumberOfSegments())] == [
        e["name"] for e in tiny_model.labels
    ]
    for n, e in enumerate(tiny_model.labels):
        assert np.allclose(seg.GetNthSegment(n).GetColor(), e["color"])
    assert seg.ContainsRepresentation("Closed surface")
    assert node.GetNodeReference(node.GetReferenceImageGeometryReferenceRole()) is volume
    assert node.GetDisplayNode() is not None
    # voxels equal what the image-level API gives on the same grid
    expected = sitk.GetArrayFromImage(segment_image(ct, tiny_model, {"tta": False}))
    labels, geometry, _ = labels_from_segmentation(node)
    assert labels.shape == expected.shape and np.array_equal(labels, expected)
    assert np.allclose(geometry, volume_ijk_to_ras(volume), atol=1e-6)
    rows = rows_from_table_node(statistics_table_of(node))
    voxel_ml = 2.5 * 3.0 * 3.5 / 1000
    for row in rows:
        assert row["voxels"] == int(np.count_nonzero(expected == row["value"]))
        assert row["volume_ml"] == pytest.approx(row["voxels"] * voxel_ml)
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_second_run_makes_a_new_node_and_output_node_is_updated(scene, tiny_model):
    volume, _ = ct_node(scene)
    first = segment_volume_node(scene, volume, tiny_model, {"tta": False})
    second = segment_volume_node(scene, volume, tiny_model, {"tta": False})
    assert first.GetID() != second.GetID() and first.GetName() != second.GetName()
    count = scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode")
    again = segment_volume_node(scene, volume, tiny_model, {"tta": False}, output_node=first)
    assert again is first and scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == count
    assert scene.GetNumberOfNodesByClass("vtkMRMLTableNode") == 2  # the old table of `first` was replaced


# --- bad input: one clear error, scene exactly as before ----------------------------------------


def _volume(scene, array, spacing=(1.0, 1.0, 1.0), name="bad"):
    return add_volume_node(scene, array, np.diag([*list(spacing), 1.0]), name=name)


def expect_unchanged(scene, snapshot, volume, error, match, model, **kwargs):
    before = snapshot(scene)
    with pytest.raises(error, match=match):
        segment_volume_node(scene, volume, model, {"tta": False}, **kwargs)
    assert snapshot(scene) == before


def test_bad_volume_no_node(scene, snapshot, tiny_model):
    expect_unchanged(scene, snapshot, None, InputError, "No input volume", tiny_model)


def test_bad_volume_empty(scene, snapshot, tiny_model):
    import slicer

    node = slicer.vtkMRMLScalarVolumeNode()
    node.SetName("empty")
    scene.AddNode(node)
    expect_unchanged(scene, snapshot, node, InputError, "empty|no voxel", tiny_model)


def test_bad_volume_2d(scene, snapshot, tiny_model):
    expect_unchanged(
        scene, snapshot, _volume(scene, np.zeros((1, 20, 20), np.int16)), InputError, "single slice", tiny_model
    )


def test_bad_volume_4d_and_rgb(scene, snapshot, tiny_model):
    rgb = _volume(scene, np.zeros((8, 8, 8, 3), np.uint8), name="rgb")
    expect_unchanged(scene, snapshot, rgb, InputError, "RGB|colour|scalar", tiny_model)
    four = _volume(scene, np.zeros((8, 8, 8, 5), np.float32), name="4d")
    expect_unchanged(scene, snapshot, four, InputError, "scalar volume|4-D", tiny_model)


def test_bad_volume_nan_and_inf(scene, snapshot, tiny_model):
    array = np.zeros((8, 8, 8), np.float32)
    array[3, 3, 3] = np.nan
    expect_unchanged(scene, snapshot, _volume(scene, array), InputError, "NaN", tiny_model)
    array[3, 3, 3] = np.inf
    expect_unchanged(scene, snapshot, _volume(scene, array, name="inf"), InputError, "infinite", tiny_model)


def test_bad_volume_zero_spacing(scene, snapshot, tiny_model):
    volume = _volume(scene, np.zeros((8, 8, 8), np.int16))
    volume.SetSpacing(1.0, 0.0, 1.0)
    expect_unchanged(scene, snapshot, volume, InputError, "zero spacing", tiny_model)


def test_bad_volume_label_map(scene, snapshot, tiny_model):
    labels = add_volume_node(scene, np.zeros((8, 8, 8), np.uint8), np.eye(4), name="labels", labelmap=True)
    expect_unchanged(scene, snapshot, labels, InputError, "label map", tiny_model)


def test_bad_model_folder_leaves_scene(scene, snapshot, tmp_path):
    volume, _ = ct_node(scene)
    expect_unchanged(scene, snapshot, volume, ModelError, "not found", tmp_path / "no-model")


def test_cancel_mid_run_leaves_scene(scene, snapshot, tiny_model):
    volume, _ = ct_node(scene, size=(80, 80, 60))
    token = CancelToken()
    seen = []

    def progress(fraction, message):
        seen.append(message)
        if message == "running the network":
            token.cancel()

    expect_unchanged(
        scene, snapshot, volume, OperationCancelled, "Cancelled", tiny_model, progress=progress, cancel=token
    )
    assert "running the network" in seen


def test_output_node_must_be_a_segmentation(scene, snapshot, tiny_model):
    volume, _ = ct_node(scene)
    expect_unchanged(scene, snapshot, volume, InputError, "not a segmentation", tiny_model, output_node=volume)
