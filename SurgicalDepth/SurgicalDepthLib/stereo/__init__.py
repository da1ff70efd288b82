"""Stereo depth for stereo endoscopes and surgical microscopes: sources, calibration, rectification,
semi-global matching, and metric depth in the left camera's original pixel grid."""
from .calibrate import StereoCalibrationResult, calibrate_stereo
from .calibration_files import StereoCalibration, load_stereo_calibration, save_stereo_calibration
from .estimator import StereoDepthEstimator, process_stereo_video
from .matching import StereoDepth, StereoMatcher, StereoSettings
from .rectify import Rectification, cached_rectification
from .sources import LAYOUTS, StereoFrame, open_stereo_source, split_views

__all__ = ["LAYOUTS", "Rectification", "StereoCalibration", "StereoCalibrationResult", "StereoDepth",
           "StereoDepthEstimator", "StereoFrame", "StereoMatcher", "StereoSettings", "cached_rectification",
           "calibrate_stereo", "load_stereo_calibration", "open_stereo_source", "process_stereo_video",
           "save_stereo_calibration", "split_views"]
