"""Stereo as a depth source for the video pipeline: the same outputs as the monocular network (depth in mm
on the left view's original pixel grid) plus a confidence map, from :class:`StereoFrame` pairs."""
from __future__ import annotations

import numpy as np

from SurgicalAICore.errors import ModelError

from SurgicalDepthLib.stereo.calibration_files import StereoCalibration
from SurgicalDepthLib.stereo.matching import StereoMatcher, StereoSettings


class StereoDepthEstimator:
    """``predict_pair(left, right) -> (depth_mm, confidence)``. The first pair is checked for swapped views
    (``check_order``); later pairs are not, so the check costs once per stream."""

    def __init__(self, calibration: StereoCalibration, settings: StereoSettings | None = None,
                 check_order: bool = True):
        self.calibration = calibration
        self.matcher = StereoMatcher(calibration, settings)
        self._order_checked = not check_order
        self.card = {"name": "stereo", "camera": calibration.left.to_dict()}
        self.last = None

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        raise ModelError("Stereo depth needs both views; open the input as a stereo source (right view or layout).")

    def predict_pair(self, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not self._order_checked:
            self.matcher.check_order(left, right)
            self._order_checked = True
        self.last = self.matcher.compute(left, right)
        return self.last.depth_mm, self.last.confidence


def process_stereo_video(source, calibration: StereoCalibration, settings: StereoSettings | None = None, **kwargs):
    """:func:`process_video` with stereo depth: ``source`` is a stereo source (see ``open_stereo_source``);
    the outputs also hold ``<frame>_confidence.npy``."""
    from SurgicalDepthLib.depth.pipeline import process_video
    from SurgicalDepthLib.stereo.sources import open_stereo_source

    estimator = StereoDepthEstimator(calibration, settings)
    return process_video(open_stereo_source(source), calibration.left, estimator, **kwargs)
