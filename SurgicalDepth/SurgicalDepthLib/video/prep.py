"""Frame preparation: field-of-view mask, specular highlights, crop/resize with matching intrinsics.

Endoscope images show the scene through a circular field stop (or with black borders from the
video grabber); those black pixels carry no depth. Specular highlights are saturated, colourless
spots whose depth a network cannot estimate reliably; they are kept out of point clouds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from SurgicalAICore.errors import InputError

from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics


def field_stop_mask(rgb: np.ndarray, threshold: int = 20, min_fraction: float = 0.05) -> np.ndarray:
    """True inside the imaged field of view: the largest bright region with its holes filled.

    A frame with no dark border gives an all-True mask; a frame that is almost entirely dark
    (less than ``min_fraction`` bright) also gives all-True, so nothing is thrown away by mistake.
    """
    import cv2

    grey = np.asarray(rgb).max(axis=2)
    bright = (grey > threshold).astype(np.uint8)
    # opening removes compression specks in the border without moving the field-stop edge
    bright = cv2.morphologyEx(bright, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    if bright.all():
        return np.ones(grey.shape, bool)
    contours, _ = cv2.findContours(bright, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return np.ones(grey.shape, bool)
    largest = max(contours, key=cv2.contourArea)
    mask = np.zeros(grey.shape, np.uint8)
    # filling the outer contour keeps dark tissue inside the field of view (shadows, cavities)
    cv2.drawContours(mask, [largest], -1, 1, thickness=cv2.FILLED)
    if mask.mean() < min_fraction:
        return np.ones(grey.shape, bool)
    # one pixel erosion: the anti-aliased rim is neither tissue nor border
    mask = cv2.erode(mask, np.ones((3, 3), np.uint8))
    return mask.astype(bool)


def specular_mask(rgb: np.ndarray, value_min: int = 235, saturation_max: int = 40, grow_px: int = 2) -> np.ndarray:
    """True on specular highlights: near-white (high value, low saturation) pixels, grown by ``grow_px``."""
    import cv2

    hsv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2HSV)
    spots = ((hsv[:, :, 2] >= value_min) & (hsv[:, :, 1] <= saturation_max)).astype(np.uint8)
    if grow_px > 0 and spots.any():
        size = 2 * grow_px + 1
        spots = cv2.dilate(spots, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    return spots.astype(bool)


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, width, height) of the True pixels (the whole image when none)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return 0, 0, mask.shape[1], mask.shape[0]
    return int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


def fit_camera(camera: CameraIntrinsics | None, width: int, height: int,
               default_fov_deg: float = 70.0) -> CameraIntrinsics:
    """The intrinsics to use for ``width`` x ``height`` frames.

    Same size: as given. Same aspect ratio (within 1 %), e.g. calibrated at 1920x1080 and streamed
    at 1280x720: scaled. Otherwise the calibration belongs to another camera or crop: an error.
    No camera: a centred pinhole with ``default_fov_deg`` vertical field of view (depth is then only
    as metric as the network's own scale).
    """
    if camera is None:
        return CameraIntrinsics.from_fov(width, height, default_fov_deg)
    if (camera.width, camera.height) == (width, height):
        return camera
    aspect_frame, aspect_cam = width / height, camera.width / camera.height
    if abs(aspect_frame / aspect_cam - 1.0) <= 0.01:
        return camera.scaled(width, height)
    raise InputError(f"Camera intrinsics are for {camera.width}x{camera.height} frames but the video is "
                     f"{width}x{height} (another aspect ratio); load the calibration of this camera and crop.")


def crop_resize(rgb: np.ndarray, camera: CameraIntrinsics, box: tuple[int, int, int, int] | None = None,
                size: tuple[int, int] | None = None) -> tuple[np.ndarray, CameraIntrinsics]:
    """Crop ``rgb`` to ``box`` (x0, y0, w, h) then resize to ``size`` (width, height), with the intrinsics
    that describe the result."""
    import cv2

    camera.check_frame(rgb.shape[1], rgb.shape[0])
    out, cam = rgb, camera
    if box is not None:
        x0, y0, w, h = (int(v) for v in box)
        if w <= 0 or h <= 0 or x0 < 0 or y0 < 0 or x0 + w > rgb.shape[1] or y0 + h > rgb.shape[0]:
            raise InputError(f"Crop box {box} does not fit the {rgb.shape[1]}x{rgb.shape[0]} frame.")
        out = out[y0:y0 + h, x0:x0 + w]
        cam = cam.cropped(x0, y0, w, h)
    if size is not None and (out.shape[1], out.shape[0]) != tuple(size):
        w, h = int(size[0]), int(size[1])
        shrink = w < out.shape[1]
        out = cv2.resize(out, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        cam = cam.scaled(w, h)
    return np.ascontiguousarray(out), cam


@dataclass
class PreparedFrame:
    """A frame ready for the depth network, its intrinsics and its pixel masks (all at the same size)."""
    rgb: np.ndarray
    camera: CameraIntrinsics
    field_of_view: np.ndarray   # True where the scene is imaged
    specular: np.ndarray        # True on highlights (kept out of point clouds)


def prepare_frame(rgb: np.ndarray, camera: CameraIntrinsics, auto_mask: bool = True,
                  mask_specular: bool = True) -> PreparedFrame:
    """Masks of a frame at its own resolution (the depth network resizes internally)."""
    camera.check_frame(rgb.shape[1], rgb.shape[0])
    fov = field_stop_mask(rgb) if auto_mask else np.ones(rgb.shape[:2], bool)
    spec = specular_mask(rgb) if mask_specular else np.zeros(rgb.shape[:2], bool)
    return PreparedFrame(rgb, camera, fov, spec)
