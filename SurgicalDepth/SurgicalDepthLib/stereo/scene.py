"""The camera pair in the scene: a text node holding the stereo calibration as JSON (saved in the .mrml,
so it survives a .mrb) plus, for display and for use as a parent, a linear transform node with the
left-to-right rigid transform (OpenCV camera frames, mm)."""
from __future__ import annotations

import json

import numpy as np

from SurgicalAICore.errors import InputError

from SurgicalDepthLib.stereo.calibration_files import StereoCalibration

STEREO_ATTRIBUTE = "SurgicalDepth.StereoCalibration"
TRANSFORM_ROLE = "leftToRight"


def store_stereo_in_scene(scene, calibration: StereoCalibration, name: str = "Stereo camera pair", node=None):
    """Save ``calibration`` as a camera-pair node (updated in place if ``node`` is given); returns the node."""
    import slicer
    import vtk

    text = json.dumps(calibration.to_dict())
    if node is None:
        node = slicer.vtkMRMLTextNode()
        node.SetName(name)
        node.SetAttribute(STEREO_ATTRIBUTE, "1")
        scene.AddNode(node)
    node.SetText(text)
    node.SetAttribute(STEREO_ATTRIBUTE, "1")
    transform = node.GetNodeReference(TRANSFORM_ROLE)
    if transform is None:
        transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", f"{node.GetName()} left-to-right")
        node.SetNodeReferenceID(TRANSFORM_ROLE, transform.GetID())
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(calibration.left_to_right[r, c]))
    transform.SetMatrixTransformToParent(matrix)
    return node


def stereo_nodes(scene) -> list:
    collection = scene.GetNodesByClass("vtkMRMLTextNode")
    return [collection.GetItemAsObject(i) for i in range(collection.GetNumberOfItems())
            if collection.GetItemAsObject(i).GetAttribute(STEREO_ATTRIBUTE) == "1"]


def stereo_from_node(node) -> StereoCalibration:
    if node is None:
        raise InputError("No stereo camera-pair node was given.")
    try:
        return StereoCalibration.from_dict(json.loads(node.GetText() or ""))
    except json.JSONDecodeError:
        raise InputError(f"Text node '{node.GetName()}' does not hold a stereo calibration.") from None


def stereo_from_scene(scene, name: str | None = None) -> StereoCalibration | None:
    """The camera pair stored in ``scene`` (by node name, else the last stored), or None."""
    nodes = stereo_nodes(scene)
    if name is not None:
        nodes = [n for n in nodes if n.GetName() == name]
    return stereo_from_node(nodes[-1]) if nodes else None


def left_to_right_of(node) -> np.ndarray | None:
    """The 4x4 left-to-right matrix of the pair's transform node, as the scene holds it."""
    import vtk

    transform = node.GetNodeReference(TRANSFORM_ROLE)
    if transform is None:
        return None
    m = vtk.vtkMatrix4x4()
    transform.GetMatrixTransformToParent(m)
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])


STEREO_LAYOUTS = ("sbs", "tb", "interlaced", "two views")


def use_stereo(session, calibration_path, settings=None) -> StereoCalibration:
    """Make a :class:`DepthSession` (the panel's state) compute depth by stereo: the left camera becomes the
    session's camera, a :class:`StereoDepthEstimator` its model, and the camera pair is kept in the scene."""
    from SurgicalDepthLib.stereo.calibration_files import load_stereo_calibration
    from SurgicalDepthLib.stereo.estimator import StereoDepthEstimator

    calibration = load_stereo_calibration(calibration_path)
    estimator = StereoDepthEstimator(calibration, settings)   # validates before the session changes
    nodes = [n for n in stereo_nodes(session.scene) if n.GetName() == f"{session.name} stereo pair"]
    store_stereo_in_scene(session.scene, calibration, f"{session.name} stereo pair", nodes[-1] if nodes else None)
    session.set_camera(calibration.left)
    session.use_model(estimator)
    return calibration


def stereo_spec(spec, layout: str, right=None):
    """The stereo source for a panel source ``spec`` and the chosen layout (``two views``: ``right`` is the
    right view: a second file, folder, sequence or live node)."""
    from SurgicalDepthLib.stereo.sources import open_stereo_source

    if layout not in STEREO_LAYOUTS:
        raise InputError(f"Stereo layout must be one of {', '.join(STEREO_LAYOUTS)}, got {layout!r}.")
    if layout == "two views":
        if right is None or right == "":
            raise InputError("Choose the right view (a second file, folder, sequence or live node).")
        return open_stereo_source(spec, right)
    return open_stereo_source(spec, layout=layout)
