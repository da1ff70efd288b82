"""Live depth: the newest frame in, a point cloud in the scene out, never a queue in between.

Threads::

    producer (source's own: observer / OpenIGTLink / a reader for files)  -> newest-frame slot
    worker   (LiveProcessor): takes the newest frame, depth + cloud        -> newest-result slot
    caller's thread (Slicer: a qt timer on the main thread): apply(output) -> scene nodes

A frame that arrives while the worker is busy replaces the waiting one (counted as dropped); a
result the main thread has not shown yet is replaced by a newer one. Latency therefore never
grows, whatever the frame rate. Only :meth:`LiveProcessor.apply` / :meth:`poll` touch the scene,
so the GUI thread is the only one using MRML.
"""
from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from collections.abc import Callable

import numpy as np

from SurgicalAICore.errors import InputError, SurgicalAIError

from SurgicalDepthLib.depth.pipeline import DepthResult, FrameProcessor
from SurgicalDepthLib.video.sources import Frame, FrameSource, _NewestSlot

LATENCY_STAGES = ("read", "prep", "infer", "cloud", "scene", "end_to_end")


@dataclass
class LiveStats:
    fps: float = 0.0
    processed: int = 0
    shown: int = 0
    dropped_frames: int = 0
    dropped_results: int = 0
    median_ms: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    def text(self) -> str:
        """One line for the panel's readout."""
        if self.error:
            return f"Stopped: {self.error}"
        stages = ", ".join(f"{k} {v:.0f}" for k, v in self.median_ms.items() if k != "end_to_end")
        e2e = self.median_ms.get("end_to_end")
        return (f"{self.fps:.1f} fps | {stages} ms" + (f" | frame-to-scene {e2e:.0f} ms" if e2e is not None else "")
                + f" | dropped {self.dropped_frames}")


class _FileFeeder:
    """Plays a recorded source into a newest-frame slot, at its own frame rate when ``realtime``."""

    def __init__(self, source: FrameSource, slot: _NewestSlot, realtime: bool, loop: bool):
        self.source, self.slot, self.realtime, self.loop = source, slot, realtime, loop
        self.error: Exception | None = None
        self.finished = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="FrameFeeder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        period = 1.0 / (self.source.fps or 30.0)
        try:
            while not self._stop.is_set():
                start = time.perf_counter()
                n = 0
                for n, frame in enumerate(self.source, start=1):
                    if self._stop.is_set():
                        return
                    self.slot.put(frame)
                    if self.realtime:
                        wait = start + n * period - time.perf_counter()
                        if wait > 0:
                            self._stop.wait(wait)
                if not self.loop or n == 0:
                    break
        except Exception as error:  # reported through the processor's stats
            self.error = error
        finally:
            self.finished = True

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)


class LiveProcessor:
    """Runs a :class:`FrameProcessor` on the newest frame of a source, off the caller's thread.

    ``start()`` / ``stop()``; ``set_source``, ``set_processor`` (model, camera, point budget) are
    safe while running: the worker picks the new one up at its next frame. ``apply(output)`` (call it
    from the GUI thread, e.g. every 20 ms) shows the newest result in a
    :class:`~SurgicalDepthLib.depth_scene.LiveSceneOutput`; ``stats()`` reports fps and latency.
    """

    def __init__(self, source: FrameSource, processor: FrameProcessor, realtime: bool = True, loop: bool = False,
                 on_result: Callable[[DepthResult], None] | None = None, history: int = 60):
        if processor is None:
            raise InputError("No frame processor was given.")
        self._lock = threading.Lock()
        self._source = source
        self._processor = processor
        self.realtime, self.loop = realtime, loop
        self.on_result = on_result
        self._results = _NewestSlot()
        self._feed_slot: _NewestSlot | None = None
        self._feeder: _FileFeeder | None = None
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self._lat: dict[str, collections.deque[float]] = {s: collections.deque(maxlen=history) for s in LATENCY_STAGES}
        self._done_times: collections.deque[float] = collections.deque(maxlen=history)
        self._processed = 0
        self._shown = 0
        self._dropped_feed = 0
        self._error: Exception | None = None

    # ---- control ----
    @property
    def running(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    @property
    def error(self) -> Exception | None:
        return self._error

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._error = None
        self._start_feed()
        self._worker = threading.Thread(target=self._work, name="LiveDepth", daemon=True)
        self._worker.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._worker is not None:
            self._worker.join(timeout)
            self._worker = None
        self._stop_feed()

    def close(self) -> None:
        self.stop()
        if self._source is not None:
            self._source.close()

    def set_source(self, source: FrameSource) -> None:
        """Switch the input; the old source is closed. Frames of the old source still in flight are dropped."""
        with self._lock:
            old, self._source = self._source, source
            was_running = self.running
        if was_running:
            self._stop_feed()
            self._start_feed()
        if old is not None and old is not source:
            old.close()

    def set_processor(self, processor: FrameProcessor) -> None:
        with self._lock:
            self._processor = processor

    @property
    def processor(self) -> FrameProcessor:
        return self._processor

    # ---- frames in ----
    def _start_feed(self) -> None:
        with self._lock:
            source = self._source
            if source is not None and not source.is_live:
                self._feed_slot = _NewestSlot()
                self._feeder = _FileFeeder(source, self._feed_slot, self.realtime, self.loop)
            else:
                self._feed_slot, self._feeder = None, None

    def _stop_feed(self) -> None:
        feeder, slot = self._feeder, self._feed_slot
        if feeder is not None:
            feeder.stop()
            self._dropped_feed += slot.dropped
        self._feeder, self._feed_slot = None, None

    def _grab(self, timeout: float) -> Frame | None:
        with self._lock:
            source, slot, feeder = self._source, self._feed_slot, self._feeder
        if source is None:
            time.sleep(timeout)
            return None
        if slot is not None:
            frame = slot.take(timeout)
            if frame is None and feeder is not None and feeder.error is not None:
                raise feeder.error
            return frame
        return source.latest(timeout)

    # ---- worker ----
    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                frame = self._grab(0.05)
                if frame is None:
                    self._stop.wait(0.002)  # a closed source returns at once; do not spin
                    continue
                with self._lock:
                    processor = self._processor
                result = processor.process(frame)
            except Exception as error:  # shown in the panel; the worker stops cleanly
                self._error = error
                break
            self._processed += 1
            self._done_times.append(time.perf_counter())
            for stage in ("read", "prep", "infer", "cloud"):
                self._lat[stage].append(result.timings.get(stage, 0.0))
            self._results.put(result)
            if self.on_result is not None:
                self.on_result(result)

    # ---- results out (caller's / GUI thread) ----
    def poll(self) -> DepthResult | None:
        """The newest result not yet taken, or None. Raises the worker's error once it stopped on one."""
        result = self._results.take(0)
        if result is None and self._error is not None and not self.running:
            error, self._error = self._error, None
            self._last_error = error
            if isinstance(error, SurgicalAIError):
                raise error
            raise InputError(f"Live processing stopped: {error}") from error
        return result

    def apply(self, output) -> DepthResult | None:
        """Show the newest result in ``output`` (a LiveSceneOutput); returns it, or None if nothing new."""
        result = self.poll()
        if result is None:
            return None
        t0 = time.perf_counter()
        output.update(result.rgb, result.depth_mm, result.poly)
        done = time.perf_counter()
        self._lat["scene"].append(done - t0)
        self._lat["end_to_end"].append(done - result.received_at + result.timings.get("read", 0.0))
        self._shown += 1
        return result

    def stats(self) -> LiveStats:
        times = list(self._done_times)
        fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) >= 2 and times[-1] > times[0] else 0.0
        medians = {s: 1000.0 * float(np.median(v)) for s, v in self._lat.items() if len(v)}
        with self._lock:
            source, slot = self._source, self._feed_slot
        dropped = self._dropped_feed + (slot.dropped if slot is not None else 0)
        if source is not None and source.is_live:
            dropped += getattr(source, "dropped", 0)
        error = self._error or getattr(self, "_last_error", None)
        return LiveStats(fps, self._processed, self._shown, dropped, self._results.dropped, medians,
                         str(error) if error is not None else None)

    @property
    def finished(self) -> bool:
        """A recorded source played to its end (and its last frame was processed)."""
        feeder = self._feeder
        return feeder is not None and feeder.finished and (self._feed_slot is None or self._feed_slot._frame is None)


