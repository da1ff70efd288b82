"""Intrinsics kept in the scene (a node attribute), so they are saved with the .mrb and restored with it."""
from __future__ import annotations

import json


from SurgicalAICore.errors import InputError

from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics


CAMERA_ATTRIBUTE = "SurgicalDepth.CameraIntrinsics"


def store_camera_in_scene(scene, camera: CameraIntrinsics, name: str = "Endoscope camera", node=None):
    """Save ``camera`` in ``scene`` as a text node (updated in place if ``node`` is given); returns the node."""
    import slicer

    text = json.dumps(camera.to_dict())
    if node is None:
        node = slicer.vtkMRMLTextNode()
        node.SetName(name)
        node.SetText(text)
        node.SetAttribute(CAMERA_ATTRIBUTE, "1")
        scene.AddNode(node)
    else:
        node.SetText(text)
        node.SetAttribute(CAMERA_ATTRIBUTE, "1")
    return node


def camera_nodes(scene) -> list:
    nodes = []
    collection = scene.GetNodesByClass("vtkMRMLTextNode")
    for i in range(collection.GetNumberOfItems()):
        node = collection.GetItemAsObject(i)
        if node.GetAttribute(CAMERA_ATTRIBUTE) == "1":
            nodes.append(node)
    return nodes


def camera_from_node(node) -> CameraIntrinsics:
    if node is None:
        raise InputError("No camera node was given.")
    try:
        return CameraIntrinsics.from_dict(json.loads(node.GetText() or ""))
    except json.JSONDecodeError:
        raise InputError(f"Text node '{node.GetName()}' does not hold camera intrinsics.") from None


def camera_from_scene(scene, name: str | None = None) -> CameraIntrinsics | None:
    """The intrinsics stored in ``scene`` (by node name, else the last stored), or None."""
    nodes = camera_nodes(scene)
    if name is not None:
        nodes = [n for n in nodes if n.GetName() == name]
    return camera_from_node(nodes[-1]) if nodes else None
