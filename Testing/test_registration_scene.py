"""Registration targets from MRML nodes and the camera-to-CT transform node on a real scene."""
import numpy as np
import pytest

from SurgicalAICore.errors import InputError
from SurgicalAICore.mrml.volumes import add_volume_node
from SurgicalDepthLib.registration import shapes
from SurgicalDepthLib.registration.icp import pose_error
from SurgicalAICore.mrml.transforms import get_matrix, set_matrix
from SurgicalDepthLib.registration.register import register_cloud
from SurgicalDepthLib.registration.target import (segment_surfaces, target_from_polydata, target_from_segmentation,
                                                  target_from_threshold)


def _ball_volume(scene, radius_mm=20.0):
    """A CT-like volume: a soft-tissue ball (40 HU) in air (-1000 HU), 1.5 mm voxels, off-centre origin."""
    k, j, i = np.mgrid[0:40, 0:40, 0:40].astype(float)
    spacing, origin = 1.5, np.array([-30.0, -20.0, 10.0])
    ijk_to_ras = np.diag([spacing, spacing, spacing, 1.0])
    ijk_to_ras[:3, 3] = origin
    centre = origin + spacing * 19.5
    r = spacing * np.sqrt((i - 19.5) ** 2 + (j - 19.5) ** 2 + (k - 19.5) ** 2)
    array = np.where(r <= radius_mm, 40.0, -1000.0).astype(np.int16)
    return add_volume_node(scene, array, ijk_to_ras, name="CT"), centre, array, ijk_to_ras


def test_threshold_target_lies_on_the_isosurface(scene):
    node, centre, _, _ = _ball_volume(scene)
    target = target_from_threshold(node, -480.0)
    radius = np.linalg.norm(target.points - centre, axis=1)
    assert abs(np.median(radius) - 20.0) < 1.0 and radius.std() < 0.8
    assert np.allclose(target.centroid, centre, atol=0.5)
    with pytest.raises(InputError, match="outside the volume's range"):
        target_from_threshold(node, 500.0)


def test_segmentation_target_from_labelmap_and_empty_segment(scene):
    from SurgicalAICore.mrml.segmentations import add_segmentation_to_scene, new_segmentation_node

    _, centre, array, ijk_to_ras = _ball_volume(scene)
    labels = [{"value": 1, "name": "ball", "color": [1, 0, 0]}, {"value": 2, "name": "empty", "color": [0, 1, 0]}]
    seg = add_segmentation_to_scene(scene, new_segmentation_node((array > 0).astype(np.uint8), ijk_to_ras, labels,
                                                                 closed_surface=False))
    ball_id = seg.GetSegmentation().GetSegmentIdBySegmentName("ball")
    target = target_from_segmentation(seg, [ball_id])
    radius = np.linalg.norm(target.points - centre, axis=1)
    assert abs(np.median(radius) - 20.0) < 1.5
    assert list(segment_surfaces(seg)) == [seg.GetSegmentation().GetSegment(ball_id).GetName()]
    with pytest.raises(InputError, match="no surface"):
        target_from_segmentation(seg, ["empty"])
    with pytest.raises(InputError, match="is not in"):
        target_from_segmentation(seg, ["liver"])
    with pytest.raises(InputError, match="No segmentation"):
        target_from_segmentation(None)


@pytest.fixture(scope="module")
def organ():
    poly = shapes.organ_polydata()
    view = shapes.visible_patch(shapes.surface_samples(poly, 1.5, seed=3), (0.2, -1, 0.4), 0.4)
    return target_from_polydata(poly), view


def test_register_cloud_moves_the_cloud_onto_the_ct(scene, organ):
    import slicer

    target, view = organ
    truth = shapes.perturbation(10, 8, view.mean(0), np.random.default_rng(4))
    cloud = shapes.apply(np.linalg.inv(truth), view)
    node = scene.AddNode(slicer.vtkMRMLLinearTransformNode())
    result = register_cloud(cloud, target, node)
    rot, trans, _ = pose_error(get_matrix(node), truth)
    assert rot < 0.1 and trans < 0.1
    assert result.quality.trusted and result.quality.rms_mm < 0.1
    assert float(node.GetAttribute("SurgicalAI.Registration.rms_mm")) == pytest.approx(result.quality.rms_mm)
    # landmarks: three cloud points and where they are on the CT give the start
    picks = cloud[[0, len(cloud) // 2, -1]]
    result = register_cloud(cloud, target, node, method="landmarks", landmarks_cloud=picks,
                            landmarks_ct=shapes.apply(truth, picks) + 0.5)
    assert max(pose_error(result.matrix, truth)[:2]) < 0.1


def test_bad_input_leaves_transform_and_scene_unchanged(scene, snapshot, organ):
    import slicer

    target, view = organ
    node = scene.AddNode(slicer.vtkMRMLLinearTransformNode())
    before = shapes.perturbation(5, 5, [0, 0, 0], np.random.default_rng(1))
    set_matrix(node, before)
    snap = snapshot(scene)
    rng = np.random.default_rng(0)
    bad = [
        (dict(cloud=np.zeros((0, 3))), "empty"),
        (dict(cloud=np.c_[rng.normal(size=(300, 2)), np.ones(300)]), "planar"),
        (dict(cloud=np.outer(np.arange(50.0), [1, 0, 1])), "collinear"),
        (dict(cloud=view, method="landmarks", landmarks_cloud=view[:2], landmarks_ct=view[:2]), "At least 3"),
        (dict(cloud=view, method="landmarks", landmarks_cloud=np.outer(np.arange(4.0), [1, 1, 1]),
              landmarks_ct=view[:4]), "collinear"),
        (dict(cloud=view, method="tracking"), "tracking transform"),
        (dict(cloud=view, method="magic"), "Unknown initialisation"),
    ]
    for kwargs, message in bad:
        with pytest.raises(InputError, match=message):
            register_cloud(kwargs.pop("cloud"), target, node, **kwargs)
        assert np.array_equal(get_matrix(node), before)
    with pytest.raises(InputError, match="target"):
        register_cloud(view, None, node)
    with pytest.raises(InputError, match="linear transform node"):
        register_cloud(view, target, scene.AddNode(slicer.vtkMRMLModelNode()))
    assert np.array_equal(get_matrix(node), before)
    snap_after = snapshot(scene)
    assert [s for s in snap_after if s[1] != "vtkMRMLModelNode"] == snap
