"""The Registration and Overlay sections' user story on a real scene: a cloud the depth section made is
registered to a segmentation, tracked until it fails (tracking stops, with the reason), overlaid on the
video node (recorded) or on the newest live frame (live sources have no video node), settings round-trip."""
import types

import numpy as np
import slicer

from SurgicalAICore.mrml.bundle import load_scene_bundle, save_scene_bundle
from SurgicalAICore.mrml.segmentations import add_segmentation_to_scene, new_segmentation_node
from SurgicalAICore.mrml.transforms import get_matrix
from SurgicalDepthLib.depth.scene import frame_volume
from SurgicalDepthLib.panel.depth_panel import DepthPanel
from SurgicalDepthLib.panel.registration_panel import InitMethod, RegistrationPanel, TargetType
from SurgicalDepthLib.registration import shapes
from SurgicalDepthLib.registration.icp import pose_error
from SurgicalDepthLib.depth.pointcloud import points_polydata


def _segmentation(scene):
    k, j, i = np.mgrid[0:48, 0:48, 0:48].astype(float)
    lab = np.zeros((48, 48, 48), np.uint8)
    lab[np.sqrt((i - 20) ** 2 + (j - 22) ** 2 + (k - 24) ** 2) <= 12] = 1
    lab[30:40, 8:20, 26:42] = 2
    lab[np.sqrt((i - 34) ** 2 + (j - 36) ** 2 + (k - 12) ** 2) <= 6] = 1
    m = np.diag([1.5, 1.5, 1.5, 1.0])
    m[:3, 3] = [-36.0, -36.0, -36.0]
    labels = [{"value": 1, "name": "balls", "color": [1, 0, 0]}, {"value": 2, "name": "box", "color": [0, 0, 1]}]
    return add_segmentation_to_scene(scene, new_segmentation_node(lab, m, labels, closed_surface=False))


def _set_points(node, points):
    node.SetAndObservePolyData(points_polydata(points, np.float64))


def test_registration_story_register_track_fail_overlay_reload(scene, tmp_path):
    seg = _segmentation(scene)
    depth = DepthPanel(scene)
    panel = RegistrationPanel(scene, depth)
    assert panel.poll() is None  # not tracking: nothing happens
    # the depth section's results, as Process all frames leaves them (references in its parameter node)
    cloud = scene.AddNewNodeByClass("vtkMRMLModelNode", "Endoscope point cloud")
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "Endoscope camera to RAS")
    video = scene.AddNode(frame_volume(np.full((120, 160, 3), 40, np.uint8), "Endoscope video"))
    depth.params.update(cloudNode=cloud, resultTransform=transform, videoNode=video)

    panel.params.update(targetType=TargetType.SEGMENTATION, targetSegmentation=seg, initMethod=InitMethod.CURRENT,
                        overlaySegments="box", showOverlay=False)
    target = panel.ensure_target()
    view = shapes.visible_patch(target.points, (0.3, 0.2, -1.0), 0.5)
    rng = np.random.default_rng(0)
    truth = shapes.perturbation(6, 4, view.mean(0), rng)
    _set_points(cloud, shapes.apply(np.linalg.inv(truth), view))
    result = panel.register()
    assert max(pose_error(get_matrix(transform), truth)[:2]) < 0.3
    assert panel.trusted and panel.message == "trusted" and "mm RMS" in panel.quality_text and result.quality.trusted

    panel.start_tracking()
    truth2 = shapes.perturbation(2, 2, view.mean(0), rng) @ truth
    _set_points(cloud, shapes.apply(np.linalg.inv(truth2), view))
    assert panel.poll() is not None and max(pose_error(get_matrix(transform), truth2)[:2]) < 0.3
    assert panel.poll() is None  # the same cloud: no work
    # a view the tracker cannot explain: the poll returns at once, the node holds the last good pose, and a
    # worker searches (relocalisation off the frame path); stopping cancels it and stops the worker
    _set_points(cloud, shapes.apply(np.linalg.inv(truth2), shapes.apply(shapes.perturbation(60, 40, view.mean(0),
                                                                                           rng), view)))
    held = get_matrix(transform).copy()
    lost = panel.poll()
    assert lost.state == "lost" and lost.relocalising and np.array_equal(lost.matrix, held)
    assert panel.message.startswith("LOST - relocalising, holding the last good pose")
    assert np.array_equal(get_matrix(transform), held)
    search = panel.session.tracker.search
    _set_points(cloud, np.c_[rng.normal(size=(200, 2)), np.zeros(200)])  # a planar cloud cannot be tracked
    assert panel.poll() is None
    assert not panel.tracking and panel.message.startswith("Tracking stopped:") and "\n" not in panel.message
    assert panel.session.tracker is None and search.job is None and search._pool is None  # worker stopped
    assert panel.status()["tracking"] is False and panel.status()["message"] == panel.message

    pose = np.eye(4)
    pose[:3, 3] = [0, 0, -150.0]
    overlay = panel.overlay(pose)
    assert slicer.util.arrayFromVolume(overlay)[0].any()
    # live: no video node, the newest live frame is drawn on (the overlay did nothing here before)
    depth.params.set("videoNode", None)
    depth.session.last_result = types.SimpleNamespace(rgb=np.zeros((120, 160, 3), np.uint8))
    assert panel.overlay(pose) is overlay and slicer.util.arrayFromVolume(overlay)[0].any()

    reloaded = load_scene_bundle(save_scene_bundle(scene, tmp_path / "registration.mrb"))
    again = RegistrationPanel(reloaded, DepthPanel(reloaded))
    values = again.params.values()
    assert values["targetSegmentation"].GetName() == seg.GetName() and values["overlaySegments"] == "box"
    assert values["initMethod"] is InitMethod.CURRENT and values["showOverlay"] is False
    assert again.depth.params.get("cloudNode").GetName() == "Endoscope point cloud"
    reloaded.Clear(1)
