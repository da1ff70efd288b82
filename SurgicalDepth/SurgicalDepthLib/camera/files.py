"""Camera intrinsics in files: this project's JSON and OpenCV YAML/XML (cv2.FileStorage)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from SurgicalAICore.atomic import atomic_file
from SurgicalAICore.errors import InputError

from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics

_MATRIX_KEYS = ("camera_matrix", "cameraMatrix", "K", "intrinsic_matrix")
_DIST_KEYS = ("distortion_coefficients", "dist_coeffs", "distCoeffs", "D", "distortion")


def load_camera(path: str | Path) -> CameraIntrinsics:
    """Intrinsics from ``.json`` (this module's format) or OpenCV ``.yml/.yaml/.xml`` (cv2.FileStorage,
    as written by OpenCV's calibration sample: camera_matrix, distortion_coefficients, image_width,
    image_height)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Camera file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return CameraIntrinsics.load_json(path)
    if suffix in (".yml", ".yaml", ".xml"):
        return _load_opencv(path)
    raise InputError(f"Camera file {path.name}: use .json, .yml, .yaml or .xml.")


def save_camera(camera: CameraIntrinsics, path: str | Path) -> Path:
    """Write ``.json`` or OpenCV ``.yml/.yaml/.xml``; the file appears complete or not at all."""

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".yml", ".yaml", ".xml"):
        raise InputError(f"Camera file {path.name}: use .json, .yml, .yaml or .xml.")
    if not path.parent.is_dir():
        raise InputError(f"Folder {path.parent} does not exist.")
    with atomic_file(path, suffix) as tmp:
        if suffix == ".json":
            camera.save_json(tmp)
        else:
            _save_opencv(camera, tmp)
    return path


def _read_node(storage, keys):
    for key in keys:
        node = storage.getNode(key)
        if not node.empty():
            return node
    return None


def _load_opencv(path: Path) -> CameraIntrinsics:
    import cv2

    try:
        storage = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
    except (cv2.error, SystemError) as error:  # OpenCV's parser raises either for malformed files
        raise InputError(f"Cannot parse camera file {path.name}: {str(error).strip().splitlines()[-1]}") from None
    try:
        if not storage.isOpened():
            raise InputError(f"Cannot parse camera file {path.name} as OpenCV YAML/XML.")
        node = _read_node(storage, _MATRIX_KEYS)
        if node is None:
            raise InputError(f"Camera file {path.name} has no camera_matrix.")
        K = node.mat()
        if K is None or K.shape != (3, 3):
            raise InputError(f"Camera file {path.name}: camera_matrix must be 3x3.")
        dist_node = _read_node(storage, _DIST_KEYS)
        dist = dist_node.mat().ravel() if dist_node is not None and dist_node.mat() is not None else np.zeros(5)
        w_node, h_node = storage.getNode("image_width"), storage.getNode("image_height")
        if w_node.empty() or h_node.empty():
            raise InputError(f"Camera file {path.name} lacks image_width / image_height.")
        width, height = int(w_node.real()), int(h_node.real())
    except (cv2.error, ValueError, OverflowError, TypeError) as error:  # a node of the wrong kind or value
        text = (str(error).strip().splitlines() or [type(error).__name__])[-1][:100]
        raise InputError(f"Cannot parse camera file {path.name}: {text}") from None
    finally:
        storage.release()
    dist = tuple(float(d) for d in dist[:8])
    if len(dist) < 4:
        dist = dist + (0.0,) * (5 - len(dist))
    return CameraIntrinsics(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), width, height, dist)


def _save_opencv(camera: CameraIntrinsics, path: Path) -> None:
    import cv2

    storage = cv2.FileStorage(str(path), cv2.FILE_STORAGE_WRITE)
    try:
        storage.write("image_width", int(camera.width))
        storage.write("image_height", int(camera.height))
        storage.write("camera_matrix", camera.K)
        storage.write("distortion_coefficients", camera.dist_coeffs.reshape(1, -1))
    finally:
        storage.release()


# ---- the scene: a text node holding the intrinsics as JSON (saved in the .mrml, survives .mrb) ----









# ---- checkerboard calibration ----





