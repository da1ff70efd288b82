"""The overlay as the registration's trust allows it: never a confident picture of a pose that is not trusted.

- trusted: filled, outlined structures (:func:`overlay_frame`);
- uncertain: thin outlines only, in one neutral colour, under an amber banner "UNCERTAIN";
- lost: no CT structure at all, a red banner "LOST - holding the last good pose".
"""
from __future__ import annotations

from dataclasses import replace
from collections.abc import Iterable

import numpy as np

from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics
from SurgicalDepthLib.overlay.composite import OverlayStructure, overlay_frame

BANNERS = {
    "uncertain": ((255, 176, 0), "UNCERTAIN - registration not confirmed"),
    "lost": ((220, 30, 30), "LOST - holding the last good pose"),
}
UNCERTAIN_OUTLINE = (255, 220, 120)


def banner(rgb: np.ndarray, state: str) -> np.ndarray:
    """``rgb`` with the state's banner across the top (unchanged for trusted)."""
    import cv2

    if state not in BANNERS:
        return rgb
    color, text = BANNERS[state]
    out = np.ascontiguousarray(rgb).copy()
    h = out.shape[0]
    bar = max(12, h // 14)
    out[:bar] = (0.35 * out[:bar] + 0.65 * np.asarray(color, np.float32)).astype(np.uint8)
    scale = bar / 30.0
    cv2.putText(out, text, (4, int(bar * 0.75)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                max(1, round(scale * 1.5)), cv2.LINE_AA)
    return out


def overlay_for_state(rgb: np.ndarray, structures: Iterable[OverlayStructure], pose_cam_to_ras: np.ndarray,
                      camera: CameraIntrinsics, state: str, opacity: float = 0.35, outline_px: int = 1,
                      field_of_view: np.ndarray | None = None) -> np.ndarray:
    """The overlaid frame for a registration in ``state`` (trusted / uncertain / lost)."""
    from SurgicalAICore.errors import InputError

    if state == "trusted":
        return overlay_frame(rgb, structures, pose_cam_to_ras, camera, opacity, outline_px, field_of_view)[0]
    if state == "uncertain":
        neutral = [replace(s, color=UNCERTAIN_OUTLINE) for s in structures]
        img, _ = overlay_frame(rgb, neutral, pose_cam_to_ras, camera, 0.0, max(1, outline_px), field_of_view)
        return banner(img, state)
    if state == "lost":
        camera.check_frame(np.shape(rgb)[1], np.shape(rgb)[0])
        return banner(np.asarray(rgb, np.uint8), state)
    raise InputError(f"Unknown registration state '{state}': use trusted, uncertain or lost.")
