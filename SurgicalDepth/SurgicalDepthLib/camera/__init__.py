"""Cameras: pinhole intrinsics with distortion (OpenCV frame), their files, checkerboard calibration and scene storage.
"""
from SurgicalAICore.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "calibration": ("CalibrationResult", "find_checkerboard", "calibrate_checkerboard",),
    "files": ("load_camera", "save_camera",),
    "intrinsics": ("CameraIntrinsics", "pixel_grid", "backproject", "project", "transform_points",),
    "scene": ("store_camera_in_scene", "camera_nodes", "camera_from_node", "camera_from_scene",),
})
