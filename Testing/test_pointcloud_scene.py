"""Depth maps, frames and point clouds as MRML nodes: live nodes, synchronised sequences, .mrb reload."""

from __future__ import annotations

import numpy as np
import pytest

from SurgicalAICore.errors import InputError
from SurgicalAICore.mrml.volumes import array_from_image_data
from SurgicalAICore.mrml.transforms import numpy_from_vtk_matrix
from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics
from SurgicalDepthLib.camera.scene import camera_from_scene
from SurgicalDepthLib.depth.scene import LiveSceneOutput, RecordedSequenceBuilder
from SurgicalDepthLib.depth.pointcloud import depth_to_pointcloud, polydata_from_cloud

CAMERA = CameraIntrinsics(70.0, 70.0, 39.5, 29.5, 80, 60, (-0.1, 0.01, 0.0, 0.0, 0.0))


def frame_and_depth(i: int):
    rgb = np.zeros((60, 80, 3), np.uint8)
    rgb[..., 0] = 40 + 20 * i
    depth = np.full((60, 80), 30.0 + 10 * i, np.float32)
    depth[:, : 5 * (i + 1)] = 0  # a growing invalid band: each frame's cloud has its own size
    return rgb, depth


def cloud_poly(rgb, depth):
    return polydata_from_cloud(depth_to_pointcloud(depth, rgb, CAMERA, max_points=None))


def save_and_reload(scene, path):
    """Through helper A's scene bundle if present, else the scene's own MRB writer/reader."""
    from SurgicalAICore.mrml.scene import new_scene

    try:
        from SurgicalAICore.mrml import bundle as scene_bundle
    except ImportError:
        scene_bundle = None
    if scene_bundle is not None and hasattr(scene_bundle, "load_scene_bundle"):
        scene_bundle.save_scene_bundle(scene, path)
        return scene_bundle.load_scene_bundle(path)
    import tempfile

    import slicer

    assert scene.WriteToMRB(str(path))
    reloaded = new_scene()
    cache = slicer.vtkCacheManager()
    cache.SetRemoteCacheDirectory(tempfile.mkdtemp())
    io = slicer.vtkDataIOManager()
    io.SetCacheManager(cache)
    reloaded.SetDataIOManager(io)
    reloaded.SetCacheManager(cache)
    assert reloaded.ReadFromMRB(str(path))
    return reloaded


def nodes_of(scene, cls):
    c = scene.GetNodesByClass(cls)
    return [c.GetItemAsObject(i) for i in range(c.GetNumberOfItems())]


def test_recorded_sequences_are_synchronised_and_reload(scene, tmp_path):
    builder = RecordedSequenceBuilder("Scope")
    expected_points = []
    for i in range(3):
        rgb, depth = frame_and_depth(i)
        poly = cloud_poly(rgb, depth)
        expected_points.append(poly.GetNumberOfPoints())
        builder.add(0.04 * i, rgb, depth, poly)
    assert scene.GetNumberOfNodes() == 0  # nothing in the scene before commit
    nodes = builder.commit(scene, CAMERA)
    browser = nodes["browser"]
    assert browser.GetNumberOfItems() == 3
    for seq in nodes["sequences"].values():
        assert seq.GetNumberOfDataNodes() == 3
    proxies = nodes["proxies"]
    assert proxies["pointcloud"].GetTransformNodeID() == nodes["transform"].GetID()
    assert np.allclose(numpy_from_vtk_matrix(nodes["transform"].GetMatrixTransformToParent()), np.eye(4))
    assert proxies["depth"].GetDisplayNode().GetColorNode().GetName() == "SurgicalDepth depth"
    # scrubbing: every item shows the matching depth map and cloud
    for i in (2, 0, 1):
        browser.SetSelectedItemNumber(i)
        assert proxies["pointcloud"].GetPolyData().GetNumberOfPoints() == expected_points[i]
        depth = array_from_image_data(proxies["depth"].GetImageData())[0]
        assert depth.max() == pytest.approx(30.0 + 10 * i)
        video = array_from_image_data(proxies["video"].GetImageData())[0]
        assert video[0, 0, 0] == 40 + 20 * i
    assert camera_from_scene(scene) == CAMERA

    reloaded = save_and_reload(scene, tmp_path / "depth.mrb")
    seqs = {s.GetName(): s for s in nodes_of(reloaded, "vtkMRMLSequenceNode")}
    assert {"Scope video sequence", "Scope depth sequence", "Scope pointcloud sequence"} <= set(seqs)
    clouds = seqs["Scope pointcloud sequence"]
    assert clouds.GetNumberOfDataNodes() == 3
    assert [clouds.GetNthDataNode(i).GetPolyData().GetNumberOfPoints() for i in range(3)] == expected_points
    assert camera_from_scene(reloaded) == CAMERA
    browsers = nodes_of(reloaded, "vtkMRMLSequenceBrowserNode")
    assert len(browsers) == 1 and browsers[0].GetNumberOfItems() == 3


def test_commit_without_frames_leaves_scene_unchanged(scene, snapshot):
    before = snapshot(scene)
    with pytest.raises(InputError, match="No frame"):
        RecordedSequenceBuilder("Empty").commit(scene, CAMERA)
    assert snapshot(scene) == before


def test_live_output_updates_nodes_in_place(scene):
    output = LiveSceneOutput(scene, "Live")
    rgb, depth = frame_and_depth(0)
    output.update(rgb, depth, cloud_poly(rgb, depth))
    ids = [n.GetID() for n in output.nodes]
    count = scene.GetNumberOfNodes()
    assert output.cloud_node.GetTransformNodeID() == output.transform_node.GetID()
    assert output.cloud_node.GetDisplayNode().GetActiveScalarName() == "RGB"
    rgb, depth = frame_and_depth(2)
    poly = cloud_poly(rgb, depth)
    output.update(rgb, depth, poly)
    assert [n.GetID() for n in output.nodes] == ids
    assert scene.GetNumberOfNodes() == count
    assert output.cloud_node.GetPolyData().GetNumberOfPoints() == poly.GetNumberOfPoints()
    assert array_from_image_data(output.depth_node.GetImageData()).max() == pytest.approx(50.0)
    lo, hi = (
        output.depth_node.GetDisplayNode().GetWindowLevelMin(),
        output.depth_node.GetDisplayNode().GetWindowLevelMax(),
    )
    assert lo <= 30.0 + 1e-3 and hi >= 50.0 - 1e-3  # the colour scale widened to both frames
    output.remove()
    assert scene.GetNumberOfNodes() < count
