"""Stereo depth for stereo endoscopes and surgical microscopes: sources, calibration, rectification,
semi-global matching, and metric depth in the left camera's original pixel grid."""
from SurgicalAICore.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "calibrate": ("StereoCalibrationResult", "calibrate_stereo"),
    "calibration_files": ("StereoCalibration", "load_stereo_calibration", "save_stereo_calibration"),
    "estimator": ("StereoDepthEstimator", "process_stereo_video"),
    "matching": ("StereoDepth", "StereoMatcher", "StereoSettings"),
    "rectify": ("Rectification", "cached_rectification"),
    "sources": ("LAYOUTS", "StereoFrame", "open_stereo_source", "split_views"),
    "teach": ("TeachResult", "TeachSettings", "teach_from_stereo"),
})
