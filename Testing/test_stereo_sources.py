"""Stereo sources: packed layouts, two streams kept in step, live pairs, stereo through the depth pipeline."""
import cv2
import numpy as np
import pytest

from SurgicalAICore.errors import InputError
from SurgicalDepthLib.video.sources import ArraySource, LiveSource
from SurgicalDepthLib.stereo import open_stereo_source, split_views
from SurgicalDepthLib.stereo.sources import LiveStereoSource


def views(n=3, h=32, w=40):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(n)], \
           [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(n)]


@pytest.mark.parametrize("layout", ["sbs", "tb", "interlaced"])
def test_packed_layouts_give_back_both_views(layout):
    lefts, rights = views()
    if layout == "sbs":
        packed = [np.hstack([a, b]) for a, b in zip(lefts, rights, strict=True)]
    elif layout == "tb":
        packed = [np.vstack([a, b]) for a, b in zip(lefts, rights, strict=True)]
    else:
        packed = [np.stack([a, b], axis=1).reshape(-1, *a.shape[1:]) for a, b in zip(lefts, rights, strict=True)]
    frames = list(open_stereo_source(ArraySource(packed, name="p"), layout=layout))
    assert len(frames) == 3
    for f, a, b in zip(frames, lefts, rights, strict=True):
        assert np.array_equal(f.rgb, a) and np.array_equal(f.right, b)


def test_odd_packed_sizes_and_unknown_layouts_are_refused():
    with pytest.raises(InputError, match="even width"):
        split_views(np.zeros((10, 11, 3), np.uint8), "sbs")
    with pytest.raises(InputError, match="layout must be one of"):
        split_views(np.zeros((10, 10, 3), np.uint8), "diagonal")
    with pytest.raises(InputError, match="needs its layout"):
        open_stereo_source(ArraySource([np.zeros((10, 10, 3), np.uint8)]))


def test_two_folders_pair_up_and_must_agree(tmp_path):
    lefts, rights = views(n=3)
    for side, images in (("L", lefts), ("R", rights), ("R2", rights[:2])):
        (tmp_path / side).mkdir()
        for i, img in enumerate(images):
            cv2.imwrite(str(tmp_path / side / f"f{i}.png"), img[:, :, ::-1])
    frames = list(open_stereo_source(tmp_path / "L", tmp_path / "R"))
    assert [f.index for f in frames] == [0, 1, 2] and np.array_equal(frames[2].right, rights[2])
    with pytest.raises(InputError, match="3 frames but the right one 2"):
        open_stereo_source(tmp_path / "L", tmp_path / "R2")


def test_streams_that_drift_apart_or_differ_in_size_are_refused():
    lefts, rights = views(n=30)
    drifting = open_stereo_source(ArraySource(lefts, fps=30), ArraySource(rights, fps=29))
    with pytest.raises(InputError, match="drifted apart at frame"):
        list(drifting)
    _, rights2 = views(n=2, w=48)
    mixed = open_stereo_source(ArraySource(lefts[:2]), ArraySource(rights2))
    with pytest.raises(InputError, match="both views must have one size"):
        list(mixed)
    shorter = open_stereo_source(ArraySource(iter(lefts[:3]), count=None), ArraySource(iter(rights[:2]), count=None))
    with pytest.raises(InputError, match="right stream ended after 2 frames"):
        list(shorter)


def test_live_views_pair_by_timestamp_and_refuse_drift():
    lefts, rights = views(n=3)
    left, right = LiveSource("left"), LiveSource("right")
    pair = LiveStereoSource(left, right, max_skew_s=0.01, refuse_after_s=0.2)
    left._offer(lefts[0], 1.000)
    right._offer(rights[0], 1.004)
    frame = pair.latest(0.01)
    assert np.array_equal(frame.rgb, lefts[0]) and np.array_equal(frame.right, rights[0])
    left._offer(lefts[1], 1.040)
    right._offer(rights[1], 1.020)      # the right view lags: wait for its partner
    assert pair.latest(0.01) is None
    right._offer(rights[2], 1.041)
    frame = pair.latest(0.01)
    assert np.array_equal(frame.rgb, lefts[1]) and np.array_equal(frame.right, rights[2])
    left._offer(lefts[2], 2.0)
    right._offer(rights[0], 1.5)
    with pytest.raises(InputError, match="500 ms apart"):
        pair.latest(0.01)
    pair.close()


def test_stereo_pairs_flow_through_the_depth_pipeline(tmp_path):
    from test_stereo_matching import synthetic_pair

    from SurgicalDepthLib.depth.pipeline import process_video
    from SurgicalDepthLib.stereo import StereoDepthEstimator

    p = synthetic_pair()
    source = open_stereo_source(ArraySource([p.left, p.left]), ArraySource([p.right, p.right]))
    summary = process_video(source, p.calibration.left, StereoDepthEstimator(p.calibration), out_dir=tmp_path / "o",
                            max_points=2000)
    assert summary.frames == 2
    depth = np.load(tmp_path / "o" / "frames_000001.npy")
    conf = np.load(tmp_path / "o" / "frames_000001_confidence.npy")
    c = (conf > 0.5) & (p.depth_mm > 0)
    assert c.mean() > 0.7 and np.mean(np.abs(depth[c] - p.depth_mm[c]) / p.depth_mm[c]) < 0.02
    assert (tmp_path / "o" / "frames_000001.ply").stat().st_size > 0


def test_panel_session_runs_stereo_into_the_scene(scene, tmp_path):
    from test_stereo_matching import synthetic_pair

    from SurgicalDepthLib.depth_session import DepthSession
    from SurgicalDepthLib.stereo import save_stereo_calibration
    from SurgicalDepthLib.stereo.scene import stereo_from_scene, stereo_spec, use_stereo

    p = synthetic_pair()
    save_stereo_calibration(p.calibration, tmp_path / "pair.json")
    session = DepthSession(scene)
    use_stereo(session, tmp_path / "pair.json")
    assert stereo_from_scene(scene).size == (320, 256) and session.camera == p.calibration.left
    source = stereo_spec(ArraySource([np.hstack([p.left, p.right])] * 2), "sbs")
    summary = session.process_all(source)
    assert summary.frames == 2 and summary.scene_nodes
    with pytest.raises(InputError, match="right view"):
        stereo_spec(ArraySource([p.left]), "two views")
