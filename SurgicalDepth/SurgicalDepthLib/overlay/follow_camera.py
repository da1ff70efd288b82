"""A 3D-view camera that looks through the registered endoscope, so the 3D rendering of the CT
lines up with the video."""
from __future__ import annotations


import numpy as np

from SurgicalAICore.errors import InputError

from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics


def rigid_part(pose: np.ndarray) -> np.ndarray:
    """The pose without its uniform scale (a registration with scale gives a similarity)."""
    m = np.asarray(pose, float).copy()
    s = np.cbrt(np.linalg.det(m[:3, :3]))
    if not np.isfinite(s) or s <= 0:
        raise InputError("The camera pose is not a proper (orientation-preserving) transform.")
    m[:3, :3] /= s
    return m


def follow_camera(camera_node, pose_cam_to_ras: np.ndarray, camera: CameraIntrinsics,
                  focal_distance_mm: float = 50.0) -> None:
    """Point a ``vtkMRMLCameraNode`` like the endoscope: same centre, viewing direction (OpenCV +z),
    up vector (OpenCV -y) and vertical view angle. The principal point is assumed central."""
    if camera_node is None:
        raise InputError("No camera node to follow the endoscope with.")
    m = rigid_part(pose_cam_to_ras)
    position = m[:3, 3]
    forward = m[:3, 2]
    up = -m[:3, 1]
    camera_node.SetPosition(*position)
    camera_node.SetFocalPoint(*(position + focal_distance_mm * forward))
    camera_node.SetViewUp(*up)
    camera_node.SetViewAngle(camera.vertical_fov_deg)


def endoscope_camera_node(scene, name: str = "Endoscope view", node=None):
    """The camera node that follows the endoscope (created and added to ``scene`` when ``node`` is None)."""
    if node is not None:
        return node
    import slicer

    node = slicer.vtkMRMLCameraNode()
    node.SetName(name)
    scene.AddNode(node)
    return node
