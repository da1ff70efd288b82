"""The SurgicalDepth face: every widget it uses exists in the .ui, the Lib stays Qt-free, and the
panel's session (what the Logic delegates to) works on a real scene."""
from __future__ import annotations

import ast
import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from SurgicalAICore.errors import InputError
from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics
from SurgicalDepthLib.camera.scene import camera_from_scene
from SurgicalDepthLib.depth_session import DepthSession

ROOT = Path(__file__).resolve().parents[1]
FACE = ROOT / "SurgicalDepth" / "SurgicalDepth.py"
UI = ROOT / "SurgicalDepth" / "Resources" / "UI" / "SurgicalDepth.ui"


def ui_names():
    return {w.get("name") for w in ET.parse(UI).getroot().iter() if w.tag in ("widget", "layout") and w.get("name")}


def face_ui_uses():
    tree = ast.parse(FACE.read_text())
    used = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) and node.value.attr == "ui"
                and isinstance(node.value.value, ast.Name) and node.value.value.id == "self"):
            used.add(node.attr)
    return used


def test_every_widget_the_face_uses_is_in_the_ui():
    used = face_ui_uses()
    assert len(used) > 20
    missing = used - ui_names()
    assert not missing, f"SurgicalDepth.py uses widgets missing from the .ui: {sorted(missing)}"
    for connection in ET.parse(UI).getroot().iter("connection"):
        assert connection.find("receiver").text in ui_names()


def test_face_structure_and_resources():
    tree = ast.parse(FACE.read_text())
    classes = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    assert {"SurgicalDepth", "SurgicalDepthWidget", "SurgicalDepthLogic", "SurgicalDepthTest"} <= classes
    assert (ROOT / "SurgicalDepth" / "Resources" / "Icons" / "SurgicalDepth.png").stat().st_size > 1000
    cmake = (ROOT / "SurgicalDepth" / "CMakeLists.txt").read_text()
    assert "SurgicalDepthLib/depth/live.py" in cmake and "Resources/UI/${MODULE_NAME}.ui" in cmake


def test_lib_is_qt_free():
    forbidden = re.compile(r"^\s*(import qt\b|import ctk\b|from qt\b|from ctk\b)|slicer\.app\b|slicer\.mrmlScene\b|"
                           r"slicer\.util\.mainWindow", re.M)
    lib = ROOT / "SurgicalDepth" / "SurgicalDepthLib"
    mine = [lib / "video" / "sources.py", lib / "video" / "prep.py", lib / "camera" / "files.py",
            lib / "depth" / "pointcloud.py", lib / "depth" / "scene.py", lib / "depth" / "live.py",
            lib / "depth_session.py", lib / "depth" / "pipeline.py", ROOT / "surgicalai" / "commands" / "depth.py",
            ROOT / "surgicalai" / "demo" / "depth.py"]
    for name in mine:
        text = name.read_text()
        assert not forbidden.search(text), name


class FlatDepth:
    card = {}

    def __init__(self, depth=60.0):
        self.depth = depth

    def predict(self, rgb):
        return np.full(rgb.shape[:2], self.depth, np.float32)


def frames(n=30, w=64, h=48):
    out = []
    for i in range(n):
        rgb = np.full((h, w, 3), 100, np.uint8)
        rgb[..., 0] = 50 + i
        out.append(rgb)
    return out


def test_session_camera_live_and_recorded(scene, tmp_path, snapshot):
    from SurgicalDepthLib.video.sources import ArraySource

    session = DepthSession(scene, "Scope")
    session.use_model(FlatDepth())
    camera = CameraIntrinsics.from_fov(128, 96, 70.0)  # frames are 64x48: scaled automatically
    session.set_camera(camera)
    assert camera_from_scene(scene) == camera
    saved = session.save_camera(tmp_path / "cam.yml")
    session.set_camera(CameraIntrinsics.from_fov(64, 48, 50.0))
    assert len([n for n in range(scene.GetNumberOfNodes()) if scene.GetNthNode(n).IsA("vtkMRMLTextNode")]) == 1
    session.load_camera(saved)
    assert session.camera == camera and camera_from_scene(scene) == camera

    session.start(ArraySource(frames(), fps=60), loop=True)
    end = time.monotonic() + 5
    stats = None
    while time.monotonic() < end and (stats is None or stats.shown < 3):
        stats = session.update()
        time.sleep(0.01)
    assert stats.shown >= 3 and session.running
    cloud = session.output.cloud_node
    assert cloud.GetPolyData().GetNumberOfPoints() > 0
    assert np.allclose(np.array(cloud.GetPolyData().GetPoint(0))[2], 60.0, atol=1e-3)
    session.use_model(FlatDepth(90.0))  # what changing the model in the panel does, while running
    end = time.monotonic() + 5
    while time.monotonic() < end:
        session.update()
        if abs(cloud.GetPolyData().GetPoint(0)[2] - 90.0) < 1e-3:
            break
        time.sleep(0.01)
    assert cloud.GetPolyData().GetPoint(0)[2] == pytest.approx(90.0)
    with pytest.raises(InputError, match="Stop live"):
        session.process_all(ArraySource(frames(3)))
    final = session.stop()
    assert not session.running and final.processed >= stats.processed

    session.set_camera(CameraIntrinsics.from_fov(100, 100, 60.0))
    before = snapshot(scene)
    with pytest.raises(InputError, match="aspect ratio"):
        session.process_all(ArraySource(frames(3)))
    assert snapshot(scene) == before
    session.set_camera(camera)
    summary = session.process_all(ArraySource(frames(5)))
    assert summary.scene_nodes["browser"].GetNumberOfItems() == 5


def test_session_calibration_needs_boards(scene, tmp_path):
    from SurgicalDepthLib.video.sources import ArraySource

    session = DepthSession(scene)
    with pytest.raises(InputError, match="Found a 9x6 checkerboard in 0 of 4 frames"):
        session.calibrate(ArraySource(frames(4)), (9, 6), 5.0)
    assert session.camera is None and camera_from_scene(scene) is None
    with pytest.raises(InputError, match="No camera to save"):
        session.save_camera(tmp_path / "c.json")


def test_session_restarts_after_the_scene_was_closed(scene):
    from SurgicalDepthLib.video.sources import ArraySource

    session = DepthSession(scene, "Scope")
    session.use_model(FlatDepth())
    for attempt in range(2):
        session.start(ArraySource(frames(), fps=60), loop=True)
        end = time.monotonic() + 5
        while time.monotonic() < end and (session.output.cloud_node is None):
            session.update()
            time.sleep(0.01)
        session.stop()
        assert session.output.cloud_node.GetScene() is scene, attempt
        scene.Clear(0)  # File > Close scene between the two runs
