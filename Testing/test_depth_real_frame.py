"""The bundled depth models on a real endoscopic frame (C3VD colon phantom; development data only).

There is no ground-truth depth for this frame, so the test checks what physics fixes: the light sits
at the scope tip, so the bright near wall must come out closer than the dark lumen, and predicted
depth must fall as the (smoothed) brightness rises over the field of view. The octagonal black border
of the real video must be found and get no depth.
"""
import numpy as np
import pytest

from SurgicalAICore.resources import shared_data_dir

FRAME = shared_data_dir() / "endoscopy" / "c3vd_phantom" / "color.png"


def _rank(a):
    r = np.empty(len(a))
    r[np.argsort(a, kind="stable")] = np.arange(len(a))
    return r


@pytest.mark.shared_data
@pytest.mark.parametrize("model", [None, "endoscopy-depth-video"])
def test_bundled_models_on_a_real_phantom_frame(model):
    if not FRAME.is_file():
        pytest.skip(f"development data not present: {FRAME} (see ../shared/data/README.md)")
    import cv2

    from SurgicalDepthLib.depth.loaders import load_depth_model as load_model
    from SurgicalDepthLib.depth.pipeline import FrameProcessor
    from SurgicalDepthLib.video.sources import Frame

    bgr = cv2.imread(str(FRAME), cv2.IMREAD_COLOR)
    rgb = np.ascontiguousarray(cv2.resize(bgr, (320, 256), interpolation=cv2.INTER_AREA)[..., ::-1])
    result = FrameProcessor(load_model(model, "cpu"), None, max_points=None).process(Frame(0, 0.0, rgb, "c3vd"))
    depth = result.depth_mm
    seen = depth > 0
    # the four black corners of the octagonal field stop get no depth; the centre does
    for y, x in ((2, 2), (2, 317), (253, 2), (253, 317)):
        assert not seen[y, x]
    assert seen[128, 160] and 0.6 < seen.mean() < 0.98
    lum = cv2.GaussianBlur(rgb.astype(np.float32).mean(axis=2), (0, 0), 6)
    d, b = depth[seen], lum[seen]
    rho = np.corrcoef(_rank(d), _rank(b))[0, 1]  # Spearman
    assert rho < -0.4, f"depth does not fall with brightness (Spearman {rho:.2f})"
    dark, bright = d[b <= np.percentile(b, 10)], d[b >= np.percentile(b, 90)]
    assert np.median(dark) > 1.5 * np.median(bright), (np.median(dark), np.median(bright))
