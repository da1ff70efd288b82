"""Stereo calibrations: the two cameras, the left-to-right rigid transform, and their files.

Convention (OpenCV's ``stereoCalibrate``): a point ``X_l`` in the left camera frame is ``X_r = R X_l + T``
in the right camera frame, millimetres. For a right camera to the right of the left one, ``T`` is about
``(-baseline, 0, 0)``. Files: OpenCV YAML/XML (``cv2.FileStorage``) or JSON with ``K1, D1, K2, D2, R, T``
and the image size, optionally the rectification ``R1, R2, P1, P2, Q``; or a folder of plain-text matrices
as the Open-CAS and Hamlyn data sets ship them (``calib.left.intrinsics.txt``, ``calib.l2r.txt``...).
"""
from __future__ import annotations

import json

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from SurgicalAICore.atomic import atomic_file
from SurgicalAICore.errors import InputError

from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics

SUFFIXES = (".json", ".yml", ".yaml", ".xml")
RECTIFICATION_KEYS = ("R1", "R2", "P1", "P2", "Q")
_SHAPES = {"R1": (3, 3), "R2": (3, 3), "P1": (3, 4), "P2": (3, 4), "Q": (4, 4)}


@dataclass(frozen=True, eq=False)
class StereoCalibration:
    left: CameraIntrinsics
    right: CameraIntrinsics
    R: np.ndarray                       # 3x3, left camera frame -> right camera frame
    T: np.ndarray                       # (3,), mm
    rectification: dict | None = None   # R1, R2, P1, P2 (and Q) when the file gave them

    def __post_init__(self):
        object.__setattr__(self, "R", np.asarray(self.R, np.float64).reshape(3, 3))
        object.__setattr__(self, "T", np.asarray(self.T, np.float64).reshape(3))
        self.validate()

    def validate(self) -> None:
        if not (np.all(np.isfinite(self.R)) and np.all(np.isfinite(self.T))):
            raise InputError("Stereo calibration: R and T must be finite numbers (found NaN or infinity).")
        if not np.allclose(self.R.T @ self.R, np.eye(3), atol=1e-3) or abs(np.linalg.det(self.R) - 1) > 1e-3:
            raise InputError("Stereo calibration: R is not a rotation (it must be orthonormal with determinant +1).")
        if self.baseline_mm < 0.05:
            raise InputError(f"Stereo calibration: the baseline is {self.baseline_mm:.3g} mm; a stereo pair needs "
                             f"two cameras apart (check T, in mm).")
        if (self.left.width, self.left.height) != (self.right.width, self.right.height):
            raise InputError(f"Stereo calibration: left images are {self.left.width}x{self.left.height} but right "
                             f"images {self.right.width}x{self.right.height}; both views must have one size.")
        if self.rectification is not None:
            for key, shape in _SHAPES.items():
                value = self.rectification.get(key)
                if value is None and key == "Q":
                    continue
                if value is None or np.asarray(value).shape != shape or not np.all(np.isfinite(value)):
                    raise InputError(f"Stereo calibration: {key} must be a finite {shape[0]}x{shape[1]} matrix.")

    @property
    def baseline_mm(self) -> float:
        return float(np.linalg.norm(self.T))

    @property
    def size(self) -> tuple[int, int]:
        return self.left.width, self.left.height

    @property
    def left_to_right(self) -> np.ndarray:
        m = np.eye(4)
        m[:3, :3], m[:3, 3] = self.R, self.T
        return m

    def check_frames(self, width: int, height: int) -> None:
        if (width, height) != self.size:
            raise InputError(f"The stereo calibration is for {self.size[0]}x{self.size[1]} views but the frames are "
                             f"{width}x{height}; use the calibration of this scope and layout.")

    def to_dict(self) -> dict:
        d = {"left": self.left.to_dict(), "right": self.right.to_dict(), "R": self.R.tolist(), "T": self.T.tolist()}
        if self.rectification is not None:
            d["rectification"] = {k: np.asarray(v).tolist() for k, v in self.rectification.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> StereoCalibration:
        try:
            if "left" in d:
                left, right = CameraIntrinsics.from_dict(d["left"]), CameraIntrinsics.from_dict(d["right"])
            else:  # flat OpenCV-style keys, image size given once
                size = _size_of(d)
                left = _camera(np.asarray(d["K1"], float), d.get("D1", [0] * 5), size)
                right = _camera(np.asarray(d["K2"], float), d.get("D2", [0] * 5), size)
            rect = d.get("rectification") or {k: d[k] for k in RECTIFICATION_KEYS if k in d} or None
            if rect is not None:
                rect = {k: np.asarray(v, np.float64) for k, v in rect.items()}
            return cls(left, right, np.asarray(d["R"], float), np.asarray(d["T"], float), rect)
        except (KeyError, TypeError, ValueError, OverflowError, IndexError, AttributeError) as error:
            if isinstance(error, InputError):
                raise
            raise InputError(f"Stereo calibration is incomplete or malformed ({error}).") from None


def _size_of(d: dict) -> tuple[int, int]:
    if "image_width" in d and "image_height" in d:
        return int(d["image_width"]), int(d["image_height"])
    for key in ("image_size", "size", "imageSize"):
        if key in d:
            w, h = (int(v) for v in np.asarray(d[key]).ravel()[:2])
            return w, h
    raise InputError("Stereo calibration lacks the image size (image_width / image_height).")


def _camera(K: np.ndarray, dist, size: tuple[int, int]) -> CameraIntrinsics:
    K = np.asarray(K, float)
    if K.shape != (3, 3):
        raise InputError(f"Stereo calibration: a camera matrix must be 3x3, got {K.shape}.")
    if not np.all(np.isfinite(K)):
        raise InputError("Stereo calibration: a camera matrix holds NaN or infinity.")
    dist = tuple(float(x) for x in np.asarray(dist, float).ravel()[:8])
    if len(dist) < 4:
        dist = dist + (0.0,) * (5 - len(dist))
    return CameraIntrinsics(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), size[0], size[1], dist)


# ---------------------------------------------------------------------------------------------- reading

def load_stereo_calibration(path: str | Path, image_size: tuple[int, int] | None = None) -> StereoCalibration:
    """A calibration from a file (``.json``, ``.yml``, ``.yaml``, ``.xml``) or a folder of text matrices
    (Open-CAS / Hamlyn layout; its image size is ``image_size`` or read from the Open-CAS original file)."""
    path = Path(path)
    if path.is_dir():
        return _load_text_folder(path, image_size)
    if not path.is_file():
        raise InputError(f"Stereo calibration not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            return StereoCalibration.from_dict(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as error:
            raise InputError(f"Cannot read stereo calibration {path.name}: {error}") from None
    if suffix in (".yml", ".yaml", ".xml"):
        return _load_opencv(path)
    raise InputError(f"Stereo calibration {path.name}: use .json, .yml, .yaml, .xml or a folder of matrices.")


_ALIASES = {"K1": ("K1", "M1", "cameraMatrix1", "camera_matrix_left"), "D1": ("D1", "distCoeffs1", "dist_left"),
            "K2": ("K2", "M2", "cameraMatrix2", "camera_matrix_right"), "D2": ("D2", "distCoeffs2", "dist_right"),
            "R": ("R",), "T": ("T",), "R1": ("R1",), "R2": ("R2",), "P1": ("P1",), "P2": ("P2",), "Q": ("Q",)}


def _load_opencv(path: Path) -> StereoCalibration:
    import cv2

    try:
        storage = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
    except (cv2.error, SystemError) as error:
        reason = str(error).strip().splitlines()[-1]
        raise InputError(f"Cannot parse stereo calibration {path.name}: {reason}") from None
    d: dict = {}
    try:
        if not storage.isOpened():
            raise InputError(f"Cannot parse stereo calibration {path.name} as OpenCV YAML/XML.")
        for key, aliases in _ALIASES.items():
            for alias in aliases:
                node = storage.getNode(alias)
                if not node.empty() and node.mat() is not None:
                    d[key] = node.mat()
                    break
        for key in ("image_width", "image_height"):
            node = storage.getNode(key)
            if not node.empty():
                d[key] = node.real()
        for key in ("image_size", "imageSize", "size"):
            node = storage.getNode(key)
            if not node.empty():
                d[key] = node.mat() if node.isMap() or node.mat() is not None else [node.at(i).real() for i in range(2)]
    except (cv2.error, ValueError, OverflowError, TypeError) as error:  # a node of the wrong kind (root not a map)
        text = (str(error).strip().splitlines() or [type(error).__name__])[-1][:100]
        raise InputError(f"Cannot parse stereo calibration {path.name}: {text}") from None
    finally:
        storage.release()
    missing = [k for k in ("K1", "K2", "R", "T") if k not in d]
    if missing:
        raise InputError(f"Stereo calibration {path.name} lacks {', '.join(missing)}.")
    return StereoCalibration.from_dict(d)


def _read_matrix(path: Path, rows: int, cols: int) -> np.ndarray:
    try:
        values = np.array(path.read_text().split(), dtype=float)
    except (OSError, ValueError) as error:
        raise InputError(f"Cannot read matrix {path.name}: {error}") from None
    if values.size != rows * cols:
        raise InputError(f"{path.name}: expected {rows * cols} numbers, found {values.size}.")
    return values.reshape(rows, cols)


def _first(folder: Path, names: tuple[str, ...]) -> Path:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise InputError(f"Stereo calibration folder {folder} lacks {names[0]}.")


def _load_text_folder(folder: Path, image_size) -> StereoCalibration:
    if image_size is None:
        originals = sorted(folder.glob("*_Calibration.txt"))
        if not originals:
            raise InputError(f"Stereo calibration folder {folder.name}: give the image size (no *_Calibration.txt).")
        numbers = originals[0].read_text(errors="replace").split()
        try:  # 'RAT', camera count, then width height
            image_size = (int(float(numbers[2])), int(float(numbers[3])))
        except (IndexError, ValueError, OverflowError):
            raise InputError(f"{originals[0].name}: expected 'RAT', the camera count, then width and height; "
                             "or give the image size.") from None
    sides = {}
    for side in ("left", "right"):
        K = _read_matrix(_first(folder, (f"calib.{side}.intrinsics.txt", f"calib.{side}.intrinsic.txt")), 3, 3)
        D = _read_matrix(_first(folder, (f"calib.{side}.distortion.txt",)), 1, 5)
        sides[side] = _camera(K, D, image_size)
    m = _read_matrix(_first(folder, ("calib.l2r.txt", "calib.l2r.4x4")), 4, 4)
    return StereoCalibration(sides["left"], sides["right"], m[:3, :3], m[:3, 3])


# ---------------------------------------------------------------------------------------------- writing

def save_stereo_calibration(calibration: StereoCalibration, path: str | Path) -> Path:
    """``.json`` or OpenCV ``.yml/.yaml/.xml``; the file appears complete or not at all."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(f"Stereo calibration {path.name}: use .json, .yml, .yaml or .xml.")
    if not path.parent.is_dir():
        raise InputError(f"Folder {path.parent} does not exist.")
    with atomic_file(path, suffix) as tmp:
        if suffix == ".json":
            tmp.write_text(json.dumps(calibration.to_dict(), indent=2) + "\n")
        else:
            _save_opencv(calibration, tmp)
    return path


def _save_opencv(c: StereoCalibration, path: Path) -> None:
    import cv2

    storage = cv2.FileStorage(str(path), cv2.FILE_STORAGE_WRITE)
    try:
        storage.write("image_width", int(c.left.width))
        storage.write("image_height", int(c.left.height))
        storage.write("K1", c.left.K)
        storage.write("D1", c.left.dist_coeffs.reshape(1, -1))
        storage.write("K2", c.right.K)
        storage.write("D2", c.right.dist_coeffs.reshape(1, -1))
        storage.write("R", c.R)
        storage.write("T", c.T.reshape(3, 1))
        for key, value in (c.rectification or {}).items():
            storage.write(key, np.asarray(value, np.float64))
    finally:
        storage.release()


