"""Pinhole camera model with OpenCV distortion.

Camera frame (OpenCV): x right, y down, z forward (viewing direction), millimetres. Pixel (u, v)
has its centre at integer coordinates, u along image columns, v along rows. A camera pose is a
4x4 camera-to-RAS matrix: column 3 is the camera centre in RAS, column 2 the viewing direction.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from collections.abc import Sequence

import numpy as np

from SurgicalAICore.errors import InputError


@dataclass(frozen=True)
class CameraIntrinsics:
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    distortion: tuple[float, ...] = field(default=(0.0, 0.0, 0.0, 0.0, 0.0))  # k1, k2, p1, p2, k3

    def __post_init__(self):
        object.__setattr__(self, "distortion", tuple(float(d) for d in self.distortion))
        self.validate()

    def validate(self) -> None:
        values = (self.fx, self.fy, self.cx, self.cy)
        if not all(math.isfinite(float(v)) for v in values):
            raise InputError("Camera intrinsics must be finite numbers.")
        if self.width <= 0 or self.height <= 0:
            raise InputError(f"Camera image size must be positive, got {self.width}x{self.height}.")
        if self.fx <= 0 or self.fy <= 0:
            raise InputError(f"Camera focal lengths must be positive, got fx={self.fx}, fy={self.fy}.")
        if not (0 <= self.cx <= self.width and 0 <= self.cy <= self.height):
            raise InputError(
                f"Principal point ({self.cx}, {self.cy}) lies outside the {self.width}x{self.height} image."
            )
        if len(self.distortion) not in (4, 5, 8) or not all(math.isfinite(d) for d in self.distortion):
            raise InputError("Distortion must be 4, 5 or 8 finite OpenCV coefficients (k1, k2, p1, p2[, k3...]).")
        coverage = _radial_coverage(self)
        if coverage < MIN_DISTORTION_COVERAGE:
            raise InputError(
                f"The distortion coefficients {tuple(self.distortion[:5])} map "
                f"{100 * (1 - coverage):.0f}% of the image outside the frame: every point cloud "
                "would be empty. Check the calibration."
            )

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def dist_coeffs(self) -> np.ndarray:
        return np.asarray(self.distortion, dtype=np.float64)

    @property
    def has_distortion(self) -> bool:
        return any(abs(d) > 0 for d in self.distortion)

    @property
    def vertical_fov_deg(self) -> float:
        return math.degrees(2.0 * math.atan2(self.height / 2.0, self.fy))

    @classmethod
    def from_fov(cls, width: int, height: int, vertical_fov_deg: float, distortion: Sequence[float] = (0, 0, 0, 0, 0)):
        """Square pixels, principal point at the image centre."""
        if not 0 < vertical_fov_deg < 180:
            raise InputError(f"Field of view must be between 0 and 180 degrees, got {vertical_fov_deg}.")
        f = (height / 2.0) / math.tan(math.radians(vertical_fov_deg) / 2.0)
        return cls(f, f, (width - 1) / 2.0, (height - 1) / 2.0, int(width), int(height), tuple(distortion))

    def check_frame(self, width: int, height: int) -> None:
        if (width, height) != (self.width, self.height):
            raise InputError(
                f"Camera intrinsics are for {self.width}x{self.height} frames but the frame is "
                f"{width}x{height}; rescale the camera or use the matching calibration."
            )

    def scaled(self, width: int, height: int) -> CameraIntrinsics:
        """Intrinsics for the same camera with frames resized to ``width`` x ``height``."""
        sx, sy = width / self.width, height / self.height
        # pixel centres at integers: a resize maps u -> (u + 0.5) * s - 0.5
        return replace(
            self,
            fx=self.fx * sx,
            fy=self.fy * sy,
            cx=(self.cx + 0.5) * sx - 0.5,
            cy=(self.cy + 0.5) * sy - 0.5,
            width=int(width),
            height=int(height),
        )

    def cropped(self, x0: int, y0: int, width: int, height: int) -> CameraIntrinsics:
        """Intrinsics for the ``width`` x ``height`` crop whose top-left pixel is (x0, y0)."""
        return replace(self, cx=self.cx - x0, cy=self.cy - y0, width=int(width), height=int(height))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["distortion"] = list(self.distortion)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> CameraIntrinsics:
        try:
            return cls(
                float(d["fx"]),
                float(d["fy"]),
                float(d["cx"]),
                float(d["cy"]),
                int(d["width"]),
                int(d["height"]),
                tuple(d.get("distortion", (0, 0, 0, 0, 0))),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise InputError(f"Camera description is incomplete or malformed ({error}).") from None

    def save_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load_json(cls, path: str | Path) -> CameraIntrinsics:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as error:
            raise InputError(f"Cannot read camera file {path}: {error}") from None


def pixel_grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) float arrays of shape (height, width): pixel-centre coordinates."""
    return np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))


def backproject(depth_mm: np.ndarray, camera: CameraIntrinsics, mask: np.ndarray = None) -> np.ndarray:
    """Points (N, 3) in the camera frame from a z-depth map (mm) of an undistorted image.

    Pixels where depth is not finite or <= 0, or where ``mask`` is False, are left out; points
    come in row-major pixel order.
    """
    depth = np.asarray(depth_mm, dtype=np.float64)
    camera.check_frame(depth.shape[1], depth.shape[0])
    valid = np.isfinite(depth) & (depth > 0)
    if mask is not None:
        valid &= np.asarray(mask, bool)
    v, u = np.nonzero(valid)
    z = depth[v, u]
    x = (u - camera.cx) / camera.fx * z
    y = (v - camera.cy) / camera.fy * z
    return np.stack([x, y, z], axis=1)


def project(points_cam: np.ndarray, camera: CameraIntrinsics) -> np.ndarray:
    """Pixel coordinates (N, 2) of camera-frame points, with the camera's distortion applied."""
    pts = np.asarray(points_cam, dtype=np.float64).reshape(-1, 3)
    if not camera.has_distortion:
        z = pts[:, 2:3]
        return np.hstack([camera.fx * pts[:, 0:1] / z + camera.cx, camera.fy * pts[:, 1:2] / z + camera.cy])
    import cv2

    uv, _ = cv2.projectPoints(pts, np.zeros(3), np.zeros(3), camera.K, camera.dist_coeffs)
    return uv.reshape(-1, 2)


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 homogeneous transform to (N, 3) points."""
    m = np.asarray(matrix, dtype=np.float64)
    return np.asarray(points, dtype=np.float64) @ m[:3, :3].T + m[:3, 3]


MIN_DISTORTION_COVERAGE = 0.05  # share of the undistorted image that must sample inside the frame


def _radial_coverage(camera: CameraIntrinsics) -> float:
    """Share of the undistorted (pinhole) image area whose pixels come from inside the recorded frame,
    from the radial terms along the image diagonal (k1 = 1e9 gives ~0: nothing left to back-project)."""
    d = list(camera.distortion) + [0.0] * 3
    k1, k2, k3 = d[0], d[1], d[4]
    if not (k1 or k2 or k3):
        return 1.0
    corner = max(
        np.hypot(
            max(camera.cx, camera.width - camera.cx) / camera.fx, max(camera.cy, camera.height - camera.cy) / camera.fy
        ),
        1e-6,
    )
    r = np.linspace(0.0, corner, 257)[1:]
    with np.errstate(over="ignore", invalid="ignore"):
        r2 = r * r
        distorted = r * (1 + k1 * r2 + k2 * r2 * r2 + k3 * r2 * r2 * r2)
        inside = np.isfinite(distorted) & (np.abs(distorted) <= corner)
    first_out = int(np.argmin(inside)) if not inside.all() else len(r)
    return float((first_out / len(r)) ** 2)
