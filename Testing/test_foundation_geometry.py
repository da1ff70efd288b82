"""Volume adapters and the LPS/RAS conversion on a real MRML scene: exact round trips."""

import numpy as np
import pytest
import SimpleITK as sitk

from SurgicalAICore import geometry
from SurgicalAICore.mrml import volumes as volume_nodes
from SurgicalAICore.errors import InputError


def oblique_geometry():
    angle = np.radians(23.0)
    rot_z = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    angle = np.radians(-11.0)
    rot_x = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    return geometry.compose_ijk_to_ras([0.7, 1.3, 3.1], rot_z @ rot_x, [-12.5, 40.25, 7.0])


def test_volume_node_round_trip_oblique_anisotropic(scene):
    rng = np.random.default_rng(0)
    array = rng.normal(size=(7, 9, 11)).astype(np.float32)
    m = oblique_geometry()
    node = volume_nodes.add_volume_node(scene, array, m, name="ct")
    back, m_back = volume_nodes.array_and_geometry(node)
    assert back.dtype == array.dtype and np.array_equal(back, array)
    np.testing.assert_allclose(m_back, m, atol=1e-12)
    assert scene.GetNodeByID(node.GetID()) is node


def test_sitk_round_trip_puts_lps_in_one_place(scene):
    image = sitk.GetImageFromArray(np.arange(60, dtype=np.int16).reshape(3, 4, 5))
    image.SetSpacing((0.5, 0.75, 2.0))
    image.SetOrigin((10.0, -20.0, 30.0))  # LPS
    node = volume_nodes.add_volume_from_sitk(scene, image, "img")
    m = volume_nodes.volume_ijk_to_ras(node)
    # voxel (0,0,0) lies at LPS (10,-20,30) = RAS (-10, 20, 30); +i is LPS +x = RAS -x
    np.testing.assert_allclose(m[:3, 3], [-10.0, 20.0, 30.0])
    np.testing.assert_allclose(m[:3, 0], [-0.5, 0.0, 0.0])
    back = volume_nodes.sitk_from_volume_node(node)
    assert back.GetOrigin() == image.GetOrigin() and back.GetSpacing() == image.GetSpacing()
    np.testing.assert_allclose(back.GetDirection(), image.GetDirection())
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))


def test_vector_volume_round_trip(scene):
    rgb = np.random.default_rng(1).integers(0, 255, size=(1, 6, 8, 3), dtype=np.uint8)
    node = volume_nodes.add_volume_node(scene, rgb, np.eye(4), name="frame")
    assert node.GetClassName() == "vtkMRMLVectorVolumeNode"
    assert np.array_equal(volume_nodes.array_and_geometry(node)[0], rgb)


@pytest.mark.parametrize("spacing", [[0.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
def test_zero_spacing_is_rejected_and_scene_unchanged(scene, snapshot, spacing):
    before = snapshot(scene)
    with pytest.raises(InputError, match="zero spacing"):
        volume_nodes.add_volume_node(
            scene, np.zeros((2, 2, 2)), geometry.compose_ijk_to_ras(spacing, np.eye(3), [0, 0, 0])
        )
    assert snapshot(scene) == before
