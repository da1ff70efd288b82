"""Frame sources: one interface over video files, image folders, Slicer sequences and live streams.

Every source yields :class:`Frame` objects (index, timestamp in seconds, RGB ``uint8`` HxWx3, name)
and streams: at most a couple of frames are held at any time, so a 10 000-frame video never sits
in memory.

Pixel formats (decided once, here, for every source):

* 8-bit colour (RGB, BGR from OpenCV, RGBA) is converted to RGB ``uint8``.
* 8-bit greyscale (HxW or HxWx1; e.g. monochrome fiberscopes) is **converted** to RGB by
  repeating the channel: the depth network sees a grey image, which it handles.
* 16-bit, float or other non-8-bit frames are **refused** with a clear message: their intensity
  range (10, 12 or 16 significant bits, linear or not) cannot be guessed safely, and a wrong guess
  silently ruins the depth. Convert them to 8-bit first (e.g. ``ffmpeg -pix_fmt rgb24``).
* A frame whose size differs from the first frame's is an error (the camera intrinsics and the
  depth network input would no longer match).

Live sources (:class:`LiveNodeSource`, :class:`IGTLinkSource`) keep only the newest frame: a
frame that arrives before the previous one was taken replaces it and is counted in ``dropped``.
"""
from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterator

import numpy as np

from SurgicalAICore.errors import InputError
from SurgicalAICore.library_output import native_stderr, quiet_ffmpeg

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".m4v")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


@dataclass
class Frame:
    """One video frame: ``rgb`` is HxWx3 ``uint8``; ``timestamp_s`` grows monotonically within a source."""
    index: int
    timestamp_s: float
    rgb: np.ndarray
    name: str
    read_s: float = 0.0     # time spent getting this frame (decode, copy), for latency reports

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


def to_rgb8(image: np.ndarray, where: str, bgr: bool = False) -> np.ndarray:
    """``image`` as a contiguous HxWx3 ``uint8`` RGB array, following the module's pixel-format rules."""
    a = np.asarray(image)
    if a.dtype != np.uint8:
        bits = f"{a.dtype.itemsize * 8}-bit" if a.dtype.kind in "ui" else f"{a.dtype} "
        raise InputError(f"{where}: {bits} frames are not supported; convert the video to 8-bit colour "
                         f"(e.g. ffmpeg -pix_fmt rgb24) so its brightness range is explicit.")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 2:
        return np.ascontiguousarray(np.repeat(a[:, :, None], 3, axis=2))
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise InputError(f"{where}: expected a colour or greyscale image, got an array of shape {a.shape}.")
    a = a[:, :, :3]
    if bgr:
        a = a[:, :, ::-1]
    if a.shape[0] < 8 or a.shape[1] < 8:
        raise InputError(f"{where}: frame of {a.shape[1]}x{a.shape[0]} pixels is too small.")
    return np.ascontiguousarray(a)


class _SizeCheck:
    """Remembers the first frame's size and refuses any later frame of another size."""

    def __init__(self, source_name: str):
        self.source_name = source_name
        self.size = None

    def __call__(self, rgb: np.ndarray, index: int) -> None:
        size = (rgb.shape[1], rgb.shape[0])
        if self.size is None:
            self.size = size
        elif size != self.size:
            raise InputError(f"{self.source_name}: frame {index} is {size[0]}x{size[1]} but earlier frames are "
                             f"{self.size[0]}x{self.size[1]}; frame size must not change within a stream.")


class FrameSource:
    """Base class. Iterate to get frames; ``close()`` (or ``with``) frees the device or file."""

    name: str = "frames"
    is_live: bool = False

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    @property
    def frame_count(self) -> int | None:
        """Number of frames if known in advance (recorded sources), else None."""
        return None

    @property
    def fps(self) -> float | None:
        return None

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class VideoFileSource(FrameSource):
    """mp4 / avi / mkv (anything OpenCV's FFmpeg backend decodes), read frame by frame."""

    def __init__(self, path: str | Path):
        import cv2

        self.path = Path(path)
        self.name = self.path.stem
        if not self.path.is_file():
            raise InputError(f"Video file not found: {self.path}")
        quiet_ffmpeg()  # FFmpeg would print 'moov atom not found' above our one line
        capture = cv2.VideoCapture(str(self.path))
        try:
            if not capture.isOpened():
                raise InputError(f"Cannot open {self.path.name} as a video (unreadable or unsupported format).")
            ok, _ = capture.read()
            if not ok:
                raise InputError(f"Video {self.path.name} has no readable frames.")
            self._fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
            count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            self._count = count if count > 0 else None
        finally:
            capture.release()

    @property
    def frame_count(self) -> int | None:
        return self._count

    @property
    def fps(self) -> float | None:
        return self._fps if self._fps > 0 else None

    def __iter__(self) -> Iterator[Frame]:
        import cv2

        capture = cv2.VideoCapture(str(self.path))
        check = _SizeCheck(self.path.name)
        period = 1.0 / self._fps if self._fps > 0 else 1.0 / 30.0
        last_t = -np.inf
        index = 0
        try:
            while True:
                t_read = time.perf_counter()
                ok, bgr = capture.read()
                if not ok:
                    break
                rgb = to_rgb8(bgr, f"{self.path.name} frame {index}", bgr=True)
                check(rgb, index)
                t = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
                if not np.isfinite(t) or t <= last_t:
                    # containers without usable timestamps: fall back to the nominal frame rate
                    t = max(index * period, last_t + period)
                last_t = t
                yield Frame(index, float(t), rgb, f"{self.name}_{index:06d}", time.perf_counter() - t_read)
                index += 1
        finally:
            capture.release()
        if index == 0:
            raise InputError(f"Video {self.path.name} has no readable frames.")


def _natural_key(path: Path):
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


class ImageFolderSource(FrameSource):
    """A folder of frames (png / jpg), in natural name order (frame2 before frame10)."""

    def __init__(self, folder: str | Path, fps: float = 30.0):
        self.folder = Path(folder)
        self.name = self.folder.name
        if not self.folder.is_dir():
            raise InputError(f"Frame folder not found: {self.folder}")
        self.files: list[Path] = sorted((p for p in self.folder.iterdir()
                                         if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS), key=_natural_key)
        if not self.files:
            raise InputError(f"Folder {self.folder} holds no .png or .jpg frames.")
        from SurgicalAICore.validation import check_positive

        self._fps = float(check_positive(fps, "The frame rate (--fps)", high=100_000))
        # a.png and a.jpg are two frames: their outputs must not share the name "a"
        stems = [p.stem for p in self.files]
        self.names = [p.name.replace(".", "_") if stems.count(p.stem) > 1 else p.stem for p in self.files]

    @property
    def frame_count(self) -> int | None:
        return len(self.files)

    @property
    def fps(self) -> float | None:
        return self._fps

    def __iter__(self) -> Iterator[Frame]:
        import cv2

        check = _SizeCheck(self.folder.name)
        for index, path in enumerate(self.files):
            t_read = time.perf_counter()
            with native_stderr() as printed:  # libpng prints its complaints before our error
                image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if image is None:
                raise InputError(f"Cannot read frame {path.name}: corrupt or not an image{printed.reason()}.")
            printed.replay()
            colour = image.ndim == 3 and image.shape[2] >= 3
            rgb = to_rgb8(image, f"frame {path.name}", bgr=colour)
            check(rgb, index)
            yield Frame(index, index / self._fps, rgb, self.names[index], time.perf_counter() - t_read)


class ArraySource(FrameSource):
    """Frames from an in-memory list or generator of arrays (tests, benchmarks, procedural video)."""

    def __init__(self, frames, fps: float = 30.0, name: str = "frames", count: int | None = None):
        self._frames = frames
        self._fps = float(fps)
        self.name = name
        self._count = count if count is not None else (len(frames) if hasattr(frames, "__len__") else None)

    @property
    def frame_count(self) -> int | None:
        return self._count

    @property
    def fps(self) -> float | None:
        return self._fps

    def __iter__(self) -> Iterator[Frame]:
        check = _SizeCheck(self.name)
        for index, image in enumerate(self._frames):
            rgb = to_rgb8(image, f"{self.name} frame {index}")
            check(rgb, index)
            yield Frame(index, index / self._fps, rgb, f"{self.name}_{index:06d}")


def _rgb_from_volume_array(array: np.ndarray, where: str) -> np.ndarray:
    """[k, j, i(, c)] volume voxels of a single-slice video frame as an image (rows = j)."""
    a = np.asarray(array)
    if a.ndim >= 3 and a.shape[0] == 1:
        a = a[0]
    elif a.ndim == 4:
        raise InputError(f"{where}: a video frame must be a single slice, got {a.shape[0]} slices.")
    return to_rgb8(a, where)


class SequenceSource(FrameSource):
    """Frames of a Slicer sequence of (vector) volumes, e.g. a recorded OpenIGTLink video.

    ``sequence`` is a ``vtkMRMLSequenceNode`` or a ``vtkMRMLSequenceBrowserNode`` (its primary sequence).
    Index values that are numbers are used as timestamps (seconds), otherwise the item number / fps.
    """

    def __init__(self, sequence, fps: float = 30.0):
        if sequence is None:
            raise InputError("No sequence was given.")
        if sequence.IsA("vtkMRMLSequenceBrowserNode"):
            browser = sequence
            sequence = browser.GetMasterSequenceNode()
            if sequence is None:
                raise InputError(f"Sequence browser '{browser.GetName()}' has no sequence.")
        if not sequence.IsA("vtkMRMLSequenceNode"):
            raise InputError(f"'{sequence.GetName()}' is not a sequence.")
        if sequence.GetNumberOfDataNodes() == 0:
            raise InputError(f"Sequence '{sequence.GetName()}' has no items.")
        first = sequence.GetNthDataNode(0)
        if first is None or not first.IsA("vtkMRMLScalarVolumeNode"):
            raise InputError(f"Sequence '{sequence.GetName()}' does not hold video frames (volumes).")
        self.sequence = sequence
        self.name = sequence.GetName() or "sequence"
        self._fps = float(fps)
        # Read every item's voxel array and index value here, on the caller's (GUI) thread: the live
        # feeder and the process-all job iterate on worker threads, where MRML nodes must not be touched.
        # The arrays are VTK data arrays held by reference (no copy of the video); only numpy reads them later.
        self._items = []
        for index in range(sequence.GetNumberOfDataNodes()):
            node = sequence.GetNthDataNode(index)
            image = node.GetImageData() if node is not None else None
            if image is None or image.GetPointData().GetScalars() is None:
                raise InputError(f"sequence '{self.name}' item {index} has no image.")
            self._items.append((image.GetPointData().GetScalars(), image.GetDimensions(),
                                sequence.GetNthIndexValue(index)))

    @property
    def frame_count(self) -> int | None:
        return len(self._items)

    @property
    def fps(self) -> float | None:
        return self._fps

    def __iter__(self) -> Iterator[Frame]:
        from vtk.util import numpy_support

        check = _SizeCheck(self.name)
        last_t = -np.inf
        for index, (scalars, dims, value) in enumerate(self._items):
            where = f"sequence '{self.name}' item {index}"
            shape = (dims[2], dims[1], dims[0]) + ((scalars.GetNumberOfComponents(),)
                                                   if scalars.GetNumberOfComponents() > 1 else ())
            rgb = _rgb_from_volume_array(numpy_support.vtk_to_numpy(scalars).reshape(shape).copy(), where)
            check(rgb, index)
            try:
                t = float(value)
            except ValueError:
                t = index / self._fps
            if t <= last_t:
                t = last_t + 1.0 / self._fps
            last_t = t
            yield Frame(index, t, rgb, f"{self.name}_{index:06d}")


class _NewestSlot:
    """Holds only the newest frame; counts frames replaced before anyone took them."""

    def __init__(self):
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self.received = 0
        self.dropped = 0
        self.closed = False

    def put(self, frame: Frame) -> None:
        with self._cond:
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self.received += 1
            self._cond.notify_all()

    def take(self, timeout: float | None) -> Frame | None:
        with self._cond:
            if self._frame is None and not self.closed:
                self._cond.wait(timeout)
            frame, self._frame = self._frame, None
            return frame

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


class LiveSource(FrameSource):
    """A stream where only the newest frame matters. ``latest(timeout)`` returns the newest frame not
    yet taken (or None), iteration yields such frames until ``close()``."""

    is_live = True

    def __init__(self, name: str):
        self.name = name
        self._slot = _NewestSlot()
        self._index = 0
        self._t0: float | None = None
        self.error: Exception | None = None
        self._check = _SizeCheck(name)

    @property
    def received(self) -> int:
        return self._slot.received

    @property
    def dropped(self) -> int:
        return self._slot.dropped

    def _offer(self, image: np.ndarray, timestamp_s: float | None = None, bgr: bool = False,
               read_started: float | None = None) -> None:
        t_read = read_started if read_started is not None else time.perf_counter()
        try:
            rgb = to_rgb8(image, f"{self.name} frame {self._index}", bgr=bgr)
            self._check(rgb, self._index)
        except InputError as error:
            self.error = error  # reported to the consumer by latest(); the producer thread stays alive
            self._slot.close()
            return
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        t = float(timestamp_s) if timestamp_s is not None else now - self._t0
        self._slot.put(Frame(self._index, t, rgb, f"{self.name}_{self._index:06d}", time.perf_counter() - t_read))
        self._index += 1

    def latest(self, timeout: float | None = 0.5) -> Frame | None:
        frame = self._slot.take(timeout)
        if frame is None and self.error is not None:
            raise self.error
        return frame

    def __iter__(self) -> Iterator[Frame]:
        while not self._slot.closed:
            frame = self.latest(0.1)
            if frame is not None:
                yield frame
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self._slot.close()


class LiveNodeSource(LiveSource):
    """A (vector) volume node that something else keeps updating, as Slicer's OpenIGTLink connector does.

    The node's voxels are copied in the thread that modifies the node (Slicer's main thread), so the
    consumer thread never touches VTK objects.
    """

    def __init__(self, node):
        if node is None or not node.IsA("vtkMRMLScalarVolumeNode"):
            raise InputError("Choose a (vector) volume node that receives the live video.")
        super().__init__(node.GetName() or "live")
        self.node = node
        self._tags = [node.AddObserver(event, self._on_modified)
                      for event in (node.ImageDataModifiedEvent,)]
        self._last_mtime = 0
        if node.GetImageData() is not None:
            self._on_modified(node, None)

    def _on_modified(self, caller, event) -> None:
        from SurgicalAICore.mrml.volumes import array_from_image_data

        image = self.node.GetImageData()
        if image is None or self._slot.closed:
            return
        mtime = image.GetMTime()
        if mtime == self._last_mtime:
            return
        self._last_mtime = mtime
        t_read = time.perf_counter()
        try:
            rgb = _rgb_from_volume_array(array_from_image_data(image), f"live node '{self.name}'")
        except InputError as error:
            self.error = error
            self._slot.close()
            return
        self._offer(rgb, read_started=t_read)

    def close(self) -> None:
        for tag in self._tags:
            self.node.RemoveObserver(tag)
        self._tags = []
        super().close()


class IGTLinkSource(LiveSource):
    """IMAGE messages received directly over OpenIGTLink with pyigtl (a PLUS server, a video grabber).

    ``device_name`` None accepts images from any device. Connection is made in the background;
    ``wait_connected(timeout)`` says whether the server was reached.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 18944, device_name: str | None = None):
        import pyigtl

        if not 0 < int(port) < 65536:
            raise InputError(f"OpenIGTLink port must be 1..65535, got {port}.")
        super().__init__(device_name or f"igtl_{host}_{port}")
        self.host, self.port, self.device_name = host, int(port), device_name
        self._client = pyigtl.OpenIGTLinkClient(host=host, port=int(port), start_now=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, name="IGTLinkSource", daemon=True)
        self._thread.start()

    def wait_connected(self, timeout: float = 5.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self._client.is_connected():
                return True
            time.sleep(0.02)
        return self._client.is_connected()

    def _receive(self) -> None:
        import pyigtl

        while not self._stop.is_set():
            if self.device_name:
                message = self._client.wait_for_message(self.device_name, timeout=0.1)
                messages = [message] if message is not None else []
            else:
                messages = self._client.get_latest_messages()
                if not messages:
                    time.sleep(0.005)
            for message in messages:
                if isinstance(message, pyigtl.ImageMessage) and message.image is not None:
                    self._offer(_igtl_image_to_rgb(message.image, self.name), message.timestamp or None)

    def close(self) -> None:
        self._stop.set()
        super().close()
        self._thread.join(timeout=2.0)
        self._client.stop()


def _igtl_image_to_rgb(image: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim == 4:
        if a.shape[0] != 1:
            return a  # refused by to_rgb8 with the shape in the message
        a = a[0]
    elif a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    return a


def open_source(spec, fps: float = 30.0) -> FrameSource:
    """A source for a path (video file or frame folder), a sequence / browser node, or a volume node (live)."""
    if isinstance(spec, FrameSource):
        return spec
    if isinstance(spec, (str, Path)):
        path = Path(spec)
        if path.is_dir():
            return ImageFolderSource(path, fps)
        if not path.exists():
            raise InputError(f"Input not found: {path}")
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            raise InputError(f"{path.name} is a single image; give a video file or a folder of frames.")
        return VideoFileSource(path)
    if hasattr(spec, "IsA"):
        if spec.IsA("vtkMRMLSequenceNode") or spec.IsA("vtkMRMLSequenceBrowserNode"):
            return SequenceSource(spec, fps)
        if spec.IsA("vtkMRMLScalarVolumeNode"):
            return LiveNodeSource(spec)
    raise InputError(f"Cannot read frames from {spec!r}: give a video file, a folder, a sequence or a volume node.")
