"""Pictures the page shows beside the views (the endoscope frame, its depth map, the overlay) as PNG data
URLs, read from the nodes the depth and registration panels keep."""
from __future__ import annotations

import base64

import cv2
import numpy as np

from SurgicalAICore.errors import InputError
from SurgicalAICore.mrml.volumes import array_from_image_data


def png_url(rgb: np.ndarray) -> str:
    ok, data = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise InputError("Could not encode the image.")
    return "data:image/png;base64," + base64.b64encode(data.tobytes()).decode()


def node_rgb(node) -> np.ndarray | None:
    """The RGB picture a (vector) volume node holds, ``[h, w, 3]`` uint8, or None."""
    if node is None or node.GetImageData() is None:
        return None
    image = array_from_image_data(node.GetImageData())
    return np.ascontiguousarray(image.reshape(image.shape[-3:])[..., :3]).astype(np.uint8)


def depth_png(node) -> str:
    """A depth volume node (mm, 0 where invalid) coloured near-warm, far-cool; black where invalid."""
    if node is None or node.GetImageData() is None:
        return ""
    depth = array_from_image_data(node.GetImageData())
    depth = depth.reshape(depth.shape[-2:])
    valid = depth > 0
    scaled = np.zeros(depth.shape, np.uint8)
    if valid.any():
        lo, hi = np.percentile(depth[valid], [2, 98])
        scaled[valid] = np.clip(255 * (depth[valid] - lo) / max(hi - lo, 1e-6), 0, 255).astype(np.uint8)
    coloured = cv2.applyColorMap(255 - scaled, cv2.COLORMAP_TURBO)
    coloured[~valid] = 0
    return png_url(coloured[..., ::-1])
