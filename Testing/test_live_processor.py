"""Live processing: a node updated from another thread, newest-frame-wins (no queue), switching while
running, recorded sources played live, and OpenIGTLink IMAGE messages over loopback."""
from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

from SurgicalAICore.errors import InputError
from SurgicalDepthLib.depth.pipeline import FrameProcessor
from SurgicalDepthLib.depth.scene import LiveSceneOutput
from SurgicalDepthLib.video.sources import ArraySource, IGTLinkSource, LiveNodeSource
from SurgicalDepthLib.depth.live import LiveProcessor


def numbered_frame(i: int, w: int = 48, h: int = 40) -> np.ndarray:
    """Frame ``i`` carries its number in the red channel of pixel (0, 0) (and is otherwise plain)."""
    rgb = np.full((h, w, 3), 90, np.uint8)
    rgb[0, 0, 0] = i
    return rgb


class SlowDepth:
    """Takes ``seconds`` per frame and remembers which frame numbers it saw."""

    card = {}

    def __init__(self, seconds: float, depth: float = 50.0):
        self.seconds, self.depth, self.seen = seconds, depth, []

    def predict(self, rgb):
        self.seen.append(int(rgb[0, 0, 0]))
        time.sleep(self.seconds)
        return np.full(rgb.shape[:2], self.depth, np.float32)


def wait_until(condition, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_live_node_from_another_thread_drops_stale_frames(scene):
    from SurgicalAICore.mrml.volumes import add_volume_node
    from SurgicalDepthLib.depth.scene import FRAME_IJK_TO_RAS

    node = add_volume_node(scene, numbered_frame(0)[None], FRAME_IJK_TO_RAS, "Live video")
    source = LiveNodeSource(node)
    model = SlowDepth(0.06)
    live = LiveProcessor(source, FrameProcessor(model, None, max_points=200))
    output = LiveSceneOutput(scene, "Live", show_video=False)
    live.start()
    produced = 60

    def igtl_like_updates():
        from SurgicalAICore.mrml.volumes import image_data_from_array

        for i in range(1, produced + 1):
            node.SetAndObserveImageData(image_data_from_array(numbered_frame(i)[None]))
            time.sleep(0.005)

    producer = threading.Thread(target=igtl_like_updates)
    producer.start()
    producer.join()
    assert wait_until(lambda: model.seen and model.seen[-1] == produced)  # the newest frame is always processed
    time.sleep(0.15)
    live.stop()
    assert live.apply(output) is not None  # the newest result reaches the scene on this (main) thread
    assert output.cloud_node.GetPolyData().GetNumberOfPoints() > 0
    seen = model.seen
    assert seen == sorted(set(seen))                   # in order, each frame at most once
    assert len(seen) < produced / 3                    # the worker was slower than the stream ...
    stats = live.stats()
    # ... and every frame it did not process was dropped, none waits in a queue
    assert stats.processed == len(seen)
    assert stats.processed + stats.dropped_frames == source.received
    assert source.received == produced + 1
    assert stats.fps > 0 and {"read", "prep", "infer", "cloud"} <= set(stats.median_ms)
    assert "fps" in stats.text()
    source.close()


def test_switch_model_and_source_while_running(scene):
    frames_a = [numbered_frame(i) for i in range(200)]
    live = LiveProcessor(ArraySource(frames_a, fps=100, name="a"), FrameProcessor(SlowDepth(0.01, 40.0), max_points=50),
                         loop=True)
    output = LiveSceneOutput(scene, "Switch")
    live.start()
    assert wait_until(lambda: live.apply(output) is not None)
    assert np.allclose(output.cloud_node.GetPolyData().GetPoint(0)[2], 40.0, atol=1e-3)
    live.set_processor(FrameProcessor(SlowDepth(0.01, 80.0), max_points=50))
    live.poll()  # a result already in flight may still come from the old model

    def from_new_model():
        result = live.apply(output)
        return result is not None and abs(float(np.median(result.depth_mm)) - 80.0) < 1e-3

    assert wait_until(from_new_model)
    live.set_source(ArraySource([numbered_frame(7, w=64, h=48)] * 50, fps=100, name="b"))
    live.poll()
    def shows_b():
        result = live.apply(output)
        return result is not None and result.name.startswith("b_")

    assert wait_until(shows_b)
    assert output.depth_node.GetImageData().GetDimensions()[:2] == (64, 48)  # the new size reached the scene
    live.stop()
    assert not live.running
    live.start()
    assert wait_until(lambda: live.poll() is not None)
    live.close()


def test_recorded_source_played_live_reports_drops_and_errors():
    frames = [numbered_frame(i) for i in range(40)]
    model = SlowDepth(0.03)
    live = LiveProcessor(ArraySource(frames, fps=200), FrameProcessor(model, max_points=50))
    live.start()
    assert wait_until(lambda: live.finished, timeout=10)
    live.stop()
    stats = live.stats()
    assert 0 < stats.processed < 40 and stats.dropped_frames > 0
    assert stats.processed + stats.dropped_frames == 40
    # a frame of another size stops the worker with a clear message, reported once through poll()
    bad = ArraySource([numbered_frame(0), numbered_frame(1, w=32)], fps=50)
    live = LiveProcessor(bad, FrameProcessor(SlowDepth(0.0), max_points=10))
    live.start()
    assert wait_until(lambda: not live.running)
    with pytest.raises(InputError, match="frame 1 is 32x40"):
        for _ in range(100):
            live.poll()
            time.sleep(0.01)
    assert "32x40" in live.stats().text()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_igtlink_image_messages_over_loopback():
    import pyigtl

    port = free_port()
    server = pyigtl.OpenIGTLinkServer(port=port, local_server=True)
    source = IGTLinkSource("127.0.0.1", port, device_name="Video")
    try:
        assert wait_until(server.is_connected, timeout=5.0) and source.wait_connected(5.0)
        first = numbered_frame(1)
        server.send_message(pyigtl.ImageMessage(first[None], device_name="Video", timestamp=12.5), wait=True)
        frame = source.latest(timeout=5.0)
        assert frame is not None and np.array_equal(frame.rgb, first)
        assert frame.timestamp_s == pytest.approx(12.5)
        for i in range(2, 7):  # a burst: only the newest is kept
            server.send_message(pyigtl.ImageMessage(numbered_frame(i)[None], device_name="Video"), wait=True)
        time.sleep(0.3)
        frame = source.latest(timeout=5.0)
        assert frame.rgb[0, 0, 0] == 6
        assert source.latest(timeout=0.2) is None
        grey = np.full((1, 40, 48), 77, np.uint8)  # greyscale IMAGE messages become grey RGB
        server.send_message(pyigtl.ImageMessage(grey, device_name="Video"), wait=True)
        frame = source.latest(timeout=5.0)
        assert frame.rgb.shape == (40, 48, 3) and np.all(frame.rgb == 77)
    finally:
        source.close()
        server.stop()
