"""Stereo frame sources behind the ordinary :class:`FrameSource` interface.

Each yields :class:`StereoFrame` objects: a :class:`Frame` whose ``rgb`` is the left view (so every
monocular consumer works unchanged) and whose ``right`` is the right view. Layouts of one stream:
side by side (``sbs``), top-bottom (``tb``), interlaced (``interlaced``: even rows left, odd rows right).
Two streams (files, folders, sequences, live volume nodes) are zipped and must stay in step: a pair whose
timestamps differ by more than ``max_skew_s`` (half a frame by default) or streams of different lengths
are refused.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from SurgicalAICore.errors import InputError

from SurgicalDepthLib.video.sources import Frame, FrameSource, LiveSource, open_source

LAYOUTS = ("sbs", "tb", "interlaced")


@dataclass
class StereoFrame(Frame):
    right: np.ndarray | None = None


def split_views(image: np.ndarray, layout: str, where: str = "frame") -> tuple[np.ndarray, np.ndarray]:
    """(left, right) views of one packed frame."""
    h, w = image.shape[:2]
    if layout == "sbs":
        if w % 2:
            raise InputError(f"{where}: a side-by-side frame needs an even width, got {w}.")
        return np.ascontiguousarray(image[:, : w // 2]), np.ascontiguousarray(image[:, w // 2:])
    if layout == "tb":
        if h % 2:
            raise InputError(f"{where}: a top-bottom frame needs an even height, got {h}.")
        return np.ascontiguousarray(image[: h // 2]), np.ascontiguousarray(image[h // 2:])
    if layout == "interlaced":
        if h % 2:
            raise InputError(f"{where}: an interlaced frame needs an even height, got {h}.")
        return np.ascontiguousarray(image[0::2]), np.ascontiguousarray(image[1::2])
    raise InputError(f"Stereo layout must be one of {', '.join(LAYOUTS)}, got {layout!r}.")


class PackedStereoSource(FrameSource):
    """One stream carrying both views (sbs / tb / interlaced)."""

    def __init__(self, inner: FrameSource, layout: str):
        if layout not in LAYOUTS:
            raise InputError(f"Stereo layout must be one of {', '.join(LAYOUTS)}, got {layout!r}.")
        self.inner, self.layout = inner, layout
        self.name = inner.name
        self.is_live = inner.is_live

    @property
    def frame_count(self):
        return self.inner.frame_count

    @property
    def fps(self):
        return self.inner.fps

    def _split(self, frame: Frame) -> StereoFrame:
        left, right = split_views(frame.rgb, self.layout, f"{self.name} frame {frame.index}")
        return StereoFrame(frame.index, frame.timestamp_s, left, frame.name, frame.read_s, right)

    def __iter__(self) -> Iterator[StereoFrame]:
        for frame in self.inner:
            yield self._split(frame)

    def latest(self, timeout: float | None = 0.5):
        frame = self.inner.latest(timeout)
        return None if frame is None else self._split(frame)

    def close(self) -> None:
        self.inner.close()


def _check_step(left: Frame, right: Frame, max_skew_s: float, name: str) -> None:
    if abs(left.timestamp_s - right.timestamp_s) > max_skew_s:
        raise InputError(f"{name}: the views drifted apart at frame {left.index} (left {left.timestamp_s:.3f} s, "
                         f"right {right.timestamp_s:.3f} s, more than {max_skew_s * 1000:.0f} ms); "
                         f"give synchronised recordings.")
    if left.rgb.shape != right.rgb.shape:
        raise InputError(f"{name}: frame {left.index} is {left.width}x{left.height} on the left but "
                         f"{right.width}x{right.height} on the right; both views must have one size.")


class PairedStereoSource(FrameSource):
    """Two recorded streams (files, folders, sequences) zipped pair by pair."""

    def __init__(self, left: FrameSource, right: FrameSource, max_skew_s: float | None = None):
        if left.is_live or right.is_live:
            raise InputError("Pair live views with LiveStereoSource.")
        if left.frame_count and right.frame_count and left.frame_count != right.frame_count:
            raise InputError(f"The left stream has {left.frame_count} frames but the right one {right.frame_count}; "
                             f"both views must have the same frames.")
        self.left, self.right = left, right
        self.name = left.name
        fps = left.fps or right.fps or 30.0
        self.max_skew_s = float(max_skew_s) if max_skew_s is not None else 0.5 / fps

    @property
    def frame_count(self):
        return self.left.frame_count

    @property
    def fps(self):
        return self.left.fps

    def __iter__(self) -> Iterator[StereoFrame]:
        rights = iter(self.right)
        count = 0
        for left in self.left:
            right = next(rights, None)
            if right is None:
                raise InputError(f"{self.name}: the right stream ended after {count} frames, the left goes on.")
            _check_step(left, right, self.max_skew_s, self.name)
            yield StereoFrame(left.index, left.timestamp_s, left.rgb, left.name, left.read_s + right.read_s, right.rgb)
            count += 1
        if next(rights, None) is not None:
            raise InputError(f"{self.name}: the left stream ended after {count} frames, the right goes on.")

    def close(self) -> None:
        self.left.close()
        self.right.close()


class LiveStereoSource(FrameSource):
    """Two live sources (OpenIGTLink volume nodes, IGTLink clients): the newest left frame paired with the
    newest right frame when their timestamps agree within ``max_skew_s``; a pair that drifts apart by
    more than ``refuse_after_s`` stops the stream with a clear error."""

    is_live = True

    def __init__(self, left: LiveSource, right: LiveSource, max_skew_s: float = 0.02, refuse_after_s: float = 0.5):
        self.left, self.right = left, right
        self.name = left.name
        self.max_skew_s, self.refuse_after_s = float(max_skew_s), float(refuse_after_s)
        self._pending: dict = {"left": None, "right": None}
        self._index = 0

    def latest(self, timeout: float | None = 0.5) -> StereoFrame | None:
        for side, source in (("left", self.left), ("right", self.right)):
            frame = source.latest(timeout)
            if frame is not None:
                self._pending[side] = frame
        left, right = self._pending["left"], self._pending["right"]
        if left is None or right is None:
            return None
        skew = abs(left.timestamp_s - right.timestamp_s)
        if skew > self.refuse_after_s:
            raise InputError(f"{self.name}: the live views are {skew * 1000:.0f} ms apart; check that both streams "
                             f"come from one synchronised stereo grabber.")
        if skew > self.max_skew_s:
            # keep the newer view and wait for its partner
            self._pending["left" if left.timestamp_s < right.timestamp_s else "right"] = None
            return None
        self._pending = {"left": None, "right": None}
        _check_step(left, right, self.max_skew_s, self.name)
        frame = StereoFrame(self._index, left.timestamp_s, left.rgb, f"{self.name}_{self._index:06d}",
                            left.read_s + right.read_s, right.rgb)
        self._index += 1
        return frame

    def __iter__(self) -> Iterator[StereoFrame]:
        while not (self.left._slot.closed or self.right._slot.closed):
            frame = self.latest(0.1)
            if frame is not None:
                yield frame

    def close(self) -> None:
        self.left.close()
        self.right.close()


def open_stereo_source(left, right=None, layout: str | None = None, fps: float = 30.0,
                       max_skew_s: float | None = None) -> FrameSource:
    """A stereo source from one packed input and its ``layout``, or from two inputs (paths, sequence nodes,
    live volume nodes)."""
    if isinstance(left, (PackedStereoSource, PairedStereoSource, LiveStereoSource)):
        return left
    if right is not None:
        if layout is not None:
            raise InputError("Give either two inputs (left and right) or one packed input with a layout, not both.")
        ls, rs = open_source(left, fps), open_source(right, fps)
        if ls.is_live and rs.is_live:
            return LiveStereoSource(ls, rs)
        return PairedStereoSource(ls, rs, max_skew_s)
    if layout is None:
        raise InputError("A single stereo input needs its layout (sbs, tb or interlaced), or give the right view.")
    return PackedStereoSource(open_source(left, fps), layout)
