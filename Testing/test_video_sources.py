"""Frame sources: video files, frame folders, sequences, pixel-format rules, bad input."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from SurgicalAICore.errors import InputError
from SurgicalDepthLib.video.sources import (ArraySource, ImageFolderSource, SequenceSource, VideoFileSource,
                                            open_source, to_rgb8)


def pattern_frame(i: int, w: int = 96, h: int = 64) -> np.ndarray:
    """A frame whose content encodes its index (a bright bar that moves), robust to video compression."""
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:, :, 2] = 60
    x = (i * 7) % (w - 16)
    rgb[:, x:x + 16, 0] = 230
    rgb[:, x:x + 16, 1] = 120
    return rgb


def write_video(path, frames, fps=25.0, fourcc="mp4v"):
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.mark.parametrize("suffix,fourcc", [(".mp4", "mp4v"), (".avi", "MJPG")])
def test_video_round_trip_same_count_and_monotonic_timestamps(tmp_path, suffix, fourcc):
    frames = [pattern_frame(i) for i in range(17)]
    path = write_video(tmp_path / f"clip{suffix}", frames, fps=25.0, fourcc=fourcc)
    source = VideoFileSource(path)
    read = list(source)
    assert len(read) == 17
    assert [f.index for f in read] == list(range(17))
    t = np.array([f.timestamp_s for f in read])
    assert np.all(np.diff(t) > 0)
    assert np.allclose(np.diff(t), 1 / 25.0, atol=5e-3)
    for f, original in zip(read, frames, strict=False):
        assert f.rgb.dtype == np.uint8 and f.rgb.shape == (64, 96, 3)
        # the bright bar is where it was written (colour order RGB, not BGR)
        bar = np.argmax(f.rgb[:, :, 0].mean(axis=0) > 150)
        assert abs(bar - np.argmax(original[:, :, 0].mean(axis=0) > 150)) <= 1
        assert f.rgb[:, :, 0].max() > f.rgb[:, :, 2].max()
    assert read[0].name == "clip_000000"


def test_video_streams_without_holding_frames(tmp_path):
    path = write_video(tmp_path / "long.mp4", [pattern_frame(i) for i in range(60)])
    iterator = iter(VideoFileSource(path))
    first = next(iterator)
    second = next(iterator)
    assert first.rgb is not second.rgb and first.index == 0 and second.index == 1
    assert sum(1 for _ in iterator) == 58


def test_unreadable_and_zero_frame_video(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    with pytest.raises(InputError, match=r"bad.mp4"):
        VideoFileSource(bad)
    empty = tmp_path / "empty.mp4"
    writer = cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"mp4v"), 25, (64, 48))
    writer.release()
    with pytest.raises(InputError, match=r"empty.mp4"):
        VideoFileSource(empty)
    with pytest.raises(InputError, match="not found"):
        VideoFileSource(tmp_path / "missing.mp4")


def test_image_folder_natural_order_and_size_change(tmp_path):
    for i in (2, 10, 1):
        cv2.imwrite(str(tmp_path / f"frame{i}.png"), cv2.cvtColor(pattern_frame(i), cv2.COLOR_RGB2BGR))
    (tmp_path / "notes.txt").write_text("ignored")
    source = ImageFolderSource(tmp_path, fps=10)
    frames = list(source)
    assert [f.name for f in frames] == ["frame1", "frame2", "frame10"]
    assert np.array_equal(frames[1].rgb, pattern_frame(2))  # png is lossless: exact, RGB order
    assert [f.timestamp_s for f in frames] == pytest.approx([0.0, 0.1, 0.2])
    cv2.imwrite(str(tmp_path / "frame11.png"), np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(InputError, match="frame 3 is 32x32 but earlier frames are 96x64"):
        list(ImageFolderSource(tmp_path))


def test_folder_errors(tmp_path):
    with pytest.raises(InputError, match=r"no .png or .jpg"):
        ImageFolderSource(tmp_path)
    (tmp_path / "a.png").write_bytes(b"garbage")
    with pytest.raises(InputError, match=r"a.png"):
        list(ImageFolderSource(tmp_path))


def test_greyscale_converted_and_16_bit_refused(tmp_path):
    grey = (np.arange(64 * 96, dtype=np.uint32).reshape(64, 96) % 251).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "g.png"), grey)
    frame = next(iter(ImageFolderSource(tmp_path)))
    assert frame.rgb.shape == (64, 96, 3)
    assert np.array_equal(frame.rgb[:, :, 0], grey) and np.array_equal(frame.rgb[:, :, 2], grey)
    cv2.imwrite(str(tmp_path / "h.png"), (grey.astype(np.uint16) * 200))
    with pytest.raises(InputError, match="16-bit frames are not supported"):
        list(ImageFolderSource(tmp_path))
    with pytest.raises(InputError, match="float32"):
        to_rgb8(np.zeros((10, 10, 3), np.float32), "x")
    with pytest.raises(InputError, match="shape"):
        to_rgb8(np.zeros((10, 10, 2), np.uint8), "x")


def test_array_source_size_change():
    frames = [pattern_frame(0), pattern_frame(1, w=80)]
    with pytest.raises(InputError, match="frame 1 is 80x64"):
        list(ArraySource(frames))


def test_sequence_source_reads_vector_volumes(scene):
    import slicer

    from SurgicalDepthLib.depth.scene import frame_volume

    seq = slicer.vtkMRMLSequenceNode()
    seq.SetName("recorded")
    for i in range(4):
        seq.SetDataNodeAtValue(frame_volume(pattern_frame(i), "f"), f"{0.5 + i * 0.04:.3f}")
    scene.AddNode(seq)
    browser = slicer.vtkMRMLSequenceBrowserNode()
    scene.AddNode(browser)
    browser.SetAndObserveMasterSequenceNodeID(seq.GetID())
    frames = list(open_source(browser))
    assert len(frames) == 4
    assert [f.timestamp_s for f in frames] == pytest.approx([0.5, 0.54, 0.58, 0.62])
    assert np.array_equal(frames[3].rgb, pattern_frame(3))
    empty = slicer.vtkMRMLSequenceNode()
    scene.AddNode(empty)
    with pytest.raises(InputError, match="no items"):
        SequenceSource(empty)


def test_open_source_dispatch(tmp_path):
    with pytest.raises(InputError, match="not found"):
        open_source(tmp_path / "nothing.mp4")
    img = tmp_path / "one.png"
    cv2.imwrite(str(img), pattern_frame(0))
    with pytest.raises(InputError, match="single image"):
        open_source(img)
    assert isinstance(open_source(tmp_path), ImageFolderSource)
