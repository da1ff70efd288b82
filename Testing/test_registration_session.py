"""The panel's Qt-free session and the ``surgicalai register`` command, on a real scene / real files."""
import json
import numpy as np
import pytest
import SimpleITK as sitk

from SurgicalAICore.errors import InputError
from SurgicalAICore.geometry import sitk_from_array
from SurgicalAICore.mrml.segmentations import add_segmentation_to_scene, new_segmentation_node
from SurgicalDepthLib.registration import shapes
from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics
from SurgicalDepthLib.registration.icp import pose_error
from SurgicalDepthLib.registration_session import RegistrationSession
from SurgicalAICore.mrml.transforms import get_matrix


def _labels():
    """Asymmetric label map (ball + offset box + small ball), 1.5 mm voxels, so the pose is observable."""
    k, j, i = np.mgrid[0:48, 0:48, 0:48].astype(float)
    lab = np.zeros((48, 48, 48), np.uint8)
    lab[np.sqrt((i - 20) ** 2 + (j - 22) ** 2 + (k - 24) ** 2) <= 12] = 1
    lab[30:40, 8:20, 26:42] = 2
    lab[np.sqrt((i - 34) ** 2 + (j - 36) ** 2 + (k - 12) ** 2) <= 6] = 1
    m = np.diag([1.5, 1.5, 1.5, 1.0])
    m[:3, 3] = [-36.0, -36.0, -36.0]
    return lab, m


def _cloud_node(scene, points):
    import slicer
    import vtk
    from vtk.util import numpy_support

    pts = vtk.vtkPoints()
    pts.SetData(numpy_support.numpy_to_vtk(np.ascontiguousarray(points), deep=True))
    poly = vtk.vtkPolyData()
    poly.SetPoints(pts)
    node = slicer.vtkMRMLModelNode()
    node.SetAndObservePolyData(poly)
    return scene.AddNode(node)


def test_session_registers_tracks_and_overlays(scene, snapshot):
    import slicer

    lab, m = _labels()
    labels = [{"value": 1, "name": "balls", "color": [1, 0, 0]}, {"value": 2, "name": "box", "color": [0, 0, 1]}]
    seg = add_segmentation_to_scene(scene, new_segmentation_node(lab, m, labels, closed_surface=False))
    session = RegistrationSession(scene)
    with pytest.raises(InputError, match="target"):
        session.register_once(None, None)
    target = session.set_target_segmentation(seg)
    view = shapes.visible_patch(target.points, (0.3, 0.2, -1.0), 0.5)
    rng = np.random.default_rng(0)
    truth = shapes.perturbation(6, 4, view.mean(0), rng)
    cloud = _cloud_node(scene, shapes.apply(np.linalg.inv(truth), view))
    transform = scene.AddNode(slicer.vtkMRMLLinearTransformNode())
    result = session.register_once(cloud, transform)
    assert max(pose_error(get_matrix(transform), truth)[:2]) < 0.3 and result.quality.trusted
    # track: the camera moves a little; the node follows
    truth2 = shapes.perturbation(2, 2, view.mean(0), rng) @ truth
    cloud.GetPolyData().GetPoints().SetData(
        __import__("vtk").util.numpy_support.numpy_to_vtk(shapes.apply(np.linalg.inv(truth2), view), deep=True))
    track = session.track(cloud, transform)
    assert track.quality.trusted and max(pose_error(get_matrix(transform), truth2)[:2]) < 0.3
    # overlay: the box is drawn on the frame and the 3D camera follows
    camera = CameraIntrinsics.from_fov(160, 120, 60.0)
    pose = np.eye(4)
    pose[:3, 3] = [0, 0, -150.0]  # 150 mm in front of the structures, looking along +S
    node = session.overlay(np.zeros((120, 160, 3), np.uint8), pose, camera, ["box"], follow_camera=True)
    assert slicer.util.arrayFromVolume(node)[0].any()
    assert np.allclose(session.camera_node.GetPosition(), [0, 0, -150.0])
    before = get_matrix(transform)
    snap = snapshot(scene)
    with pytest.raises(InputError, match="None of the chosen"):
        session.overlay(np.zeros((120, 160, 3), np.uint8), pose, camera, ["liver"])
    with pytest.raises(InputError, match="planar"):
        session.register_once(_cloud_node(scene, np.c_[rng.normal(size=(200, 2)), np.zeros(200)]), transform)
    assert np.array_equal(get_matrix(transform), before)
    assert len(snapshot(scene)) == len(snap) + 1  # only the bad cloud node the test added


def test_register_command_writes_transform_and_report(tmp_path, capsys):
    lab, m = _labels()
    labels_path = tmp_path / "labels.nii.gz"
    sitk.WriteImage(sitk_from_array(lab, m), str(labels_path))
    from SurgicalDepthLib.registration.files import load_target_file

    target = load_target_file(labels_path, kind="segmentation")
    view = shapes.visible_patch(target.points, (1.0, 0.2, 0.3), 0.5)
    truth = shapes.perturbation(5, 4, view.mean(0), np.random.default_rng(1))
    np.save(tmp_path / "cloud.npy", shapes.apply(np.linalg.inv(truth), view))
    out = tmp_path / "out"
    from surgicalai.cli import main

    args = ["register", str(tmp_path / "cloud.npy"), "--segmentation", str(labels_path), "-o", str(out)]
    assert main(args) == 0, capsys.readouterr().err
    matrix = np.loadtxt(out / "camera_to_ct.txt")
    assert max(pose_error(matrix, truth)[:2]) < 0.3
    report = json.loads((out / "registration.json").read_text())
    assert report["trusted"] and np.allclose(report["camera_to_ct_ras"], matrix, atol=1e-6)
    capsys.readouterr()
    bad = ["register", str(tmp_path / "missing.npy"), *args[2:-1], str(tmp_path / "out2")]
    assert main(bad) == 2
    assert "not found" in capsys.readouterr().err and not (tmp_path / "out2").exists()
