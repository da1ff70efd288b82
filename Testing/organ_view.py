"""The registration tests' common case: the synthetic organ and the patch of it one camera sees."""
import numpy as np

from SurgicalDepthLib.registration import shapes
from SurgicalDepthLib.registration.target import target_from_polydata


def organ_and_view():
    """(target, view): the organ's surface as a target and one side of it in CT coordinates, drawn
    independently of the target's samples."""
    poly = shapes.organ_polydata()
    target = target_from_polydata(poly, name="organ")
    view = shapes.visible_patch(shapes.surface_samples(poly, 1.0, seed=7), (1, 0.3, 0.2), 0.45)
    return target, view


def camera_cloud(view, truth):
    """Cloud in the camera frame such that ``truth`` (camera-to-CT) maps it onto the surface."""
    return shapes.apply(np.linalg.inv(truth), view)


def looking_at(centre, direction, distance=80.0) -> np.ndarray:
    """Camera-to-CT pose of a camera ``distance`` mm out along ``direction`` from ``centre``, looking at it."""
    d = np.asarray(direction, float) / np.linalg.norm(direction)
    z = -d
    x = np.cross([0.0, 0.0, 1.0], z)
    x /= np.linalg.norm(x)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([x, np.cross(z, x), z], 1)
    pose[:3, 3] = np.asarray(centre, float) + distance * d
    return pose
