"""Camera intrinsics in files (OpenCV YAML/XML, JSON), in the scene, and from checkerboard calibration."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, List, Optional, Tuple, Union

import numpy as np

from SurgicalAICore.errors import InputError

from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics

CAMERA_ATTRIBUTE = "SurgicalDepth.CameraIntrinsics"
_MATRIX_KEYS = ("camera_matrix", "cameraMatrix", "K", "intrinsic_matrix")
_DIST_KEYS = ("distortion_coefficients", "dist_coeffs", "distCoeffs", "D", "distortion")


def load_camera(path: Union[str, Path]) -> CameraIntrinsics:
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


def save_camera(camera: CameraIntrinsics, path: Union[str, Path]) -> Path:
    """Write ``.json`` or OpenCV ``.yml/.yaml/.xml``; the file appears complete or not at all."""
    import os

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".yml", ".yaml", ".xml"):
        raise InputError(f"Camera file {path.name}: use .json, .yml, .yaml or .xml.")
    if not path.parent.is_dir():
        raise InputError(f"Folder {path.parent} does not exist.")
    tmp = path.with_name(f".tmp-{path.stem}{suffix}")
    try:
        if suffix == ".json":
            camera.save_json(tmp)
        else:
            _save_opencv(camera, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
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


def camera_nodes(scene) -> List:
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


def camera_from_scene(scene, name: Optional[str] = None) -> Optional[CameraIntrinsics]:
    """The intrinsics stored in ``scene`` (by node name, else the last stored), or None."""
    nodes = camera_nodes(scene)
    if name is not None:
        nodes = [n for n in nodes if n.GetName() == name]
    return camera_from_node(nodes[-1]) if nodes else None


# ---- checkerboard calibration ----

@dataclass
class CalibrationResult:
    camera: CameraIntrinsics
    rms_px: float                      # reprojection error over all corners (OpenCV's RMS)
    per_view_px: List[float] = field(default_factory=list)
    boards_found: int = 0
    frames_used: List[int] = field(default_factory=list)
    frames_total: int = 0

    def summary(self) -> str:
        return (f"Calibrated from {self.boards_found} of {self.frames_total} frames: fx={self.camera.fx:.1f}, "
                f"fy={self.camera.fy:.1f}, cx={self.camera.cx:.1f}, cy={self.camera.cy:.1f}; "
                f"reprojection error {self.rms_px:.3f} px.")


def find_checkerboard(rgb: np.ndarray, pattern: Tuple[int, int]) -> Optional[np.ndarray]:
    """Sub-pixel inner corners (N, 1, 2) of a ``pattern`` = (columns, rows) inner-corner board, or None."""
    import cv2

    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
    found, corners = cv2.findChessboardCorners(grey, tuple(pattern), flags=flags)
    if not found:
        return None
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 1e-3)
    return cv2.cornerSubPix(grey, corners, (5, 5), (-1, -1), criteria)


def calibrate_checkerboard(frames: Iterable[np.ndarray], pattern: Tuple[int, int], square_mm: float,
                           min_boards: int = 4, progress=None, cancel=None) -> CalibrationResult:
    """Pinhole + (k1, k2, p1, p2, k3) from frames showing a checkerboard of ``pattern`` inner corners
    (columns, rows) with ``square_mm`` squares. Fails clearly with fewer than ``min_boards`` boards found."""
    import cv2

    from SurgicalAICore.progress import Progress

    if len(pattern) != 2 or min(pattern) < 2:
        raise InputError(f"Checkerboard pattern must be (columns, rows) of inner corners, each at least 2; got {pattern}.")
    if not square_mm > 0:
        raise InputError(f"Checkerboard square size must be positive, got {square_mm} mm.")
    frames = list(frames)
    steps = Progress.of(progress, cancel)
    board = np.zeros((pattern[0] * pattern[1], 3), np.float32)
    board[:, :2] = np.mgrid[0:pattern[0], 0:pattern[1]].T.reshape(-1, 2) * float(square_mm)
    object_points, image_points, used = [], [], []
    size = None
    for i, rgb in enumerate(frames):
        steps.step(0.8 * i / max(len(frames), 1), f"looking for the board in frame {i + 1}/{len(frames)}")
        rgb = np.asarray(rgb)
        if size is None:
            size = (rgb.shape[1], rgb.shape[0])
        elif (rgb.shape[1], rgb.shape[0]) != size:
            raise InputError(f"Calibration frame {i} is {rgb.shape[1]}x{rgb.shape[0]}, others {size[0]}x{size[1]}.")
        corners = find_checkerboard(rgb, pattern)
        if corners is not None:
            object_points.append(board)
            image_points.append(corners)
            used.append(i)
    if len(used) < min_boards:
        raise InputError(f"Found a {pattern[0]}x{pattern[1]} checkerboard in {len(used)} of {len(frames)} frames; "
                         f"at least {min_boards} are needed. Show the whole board at several angles, well lit, "
                         f"and check the inner-corner count.")
    steps.step(0.85, "solving for the intrinsics")
    rms, K, dist, rvecs, tvecs = cv2.calibrateCamera(object_points, image_points, size, None, None)
    per_view = []
    for obj, img, r, t in zip(object_points, image_points, rvecs, tvecs):
        projected, _ = cv2.projectPoints(obj, r, t, K, dist)
        per_view.append(float(np.sqrt(np.mean(np.sum((projected - img) ** 2, axis=2)))))
    camera = CameraIntrinsics(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), size[0], size[1],
                              tuple(float(d) for d in dist.ravel()[:5]))
    steps.step(1.0, "calibrated")
    return CalibrationResult(camera, float(rms), per_view, len(used), used, len(frames))
