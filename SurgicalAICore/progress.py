"""Progress reporting and cancellation shared by the panels, the Python API and the CLI.

Long operations take ``progress=`` (a callable ``(fraction, message)``) and ``cancel=`` (a
:class:`CancelToken`). They call :meth:`Progress.step` which reports and raises
:class:`OperationCancelled` once cancel was requested, so no caller has to poll.
"""
from __future__ import annotations

import threading
from collections.abc import Callable

from SurgicalAICore.errors import OperationCancelled

ProgressCallback = Callable[[float, str], None]


class CancelToken:
    """Thread-safe cancel flag: the GUI thread cancels, the worker checks."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise OperationCancelled()


class Progress:
    """Maps a sub-task's 0..1 onto a slice of the caller's 0..1 and checks for cancel."""

    def __init__(self, callback: ProgressCallback | None = None,
                 cancel: CancelToken | None = None, start: float = 0.0, end: float = 1.0):
        self.callback = callback
        self.cancel = cancel
        self.start = start
        self.end = end

    def step(self, fraction: float, message: str = "") -> None:
        if self.cancel is not None:
            self.cancel.raise_if_cancelled()
        if self.callback is not None:
            f = min(max(float(fraction), 0.0), 1.0)
            self.callback(self.start + (self.end - self.start) * f, message)

    def sub(self, start: float, end: float) -> Progress:
        """A Progress for a part of this task spanning ``start..end`` of it."""
        span = self.end - self.start
        return Progress(self.callback, self.cancel, self.start + span * start, self.start + span * end)

    @staticmethod
    def of(progress: ProgressCallback | Progress | None, cancel: CancelToken | None = None) -> Progress:
        if isinstance(progress, Progress):
            if cancel is not None and progress.cancel is None:
                progress.cancel = cancel
            return progress
        return Progress(progress, cancel)


def tqdm_callback(desc: str = "", total: int = 1000) -> ProgressCallback:
    """A progress callback drawing a tqdm bar (for the CLI)."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="‰", leave=False, bar_format="{desc} {percentage:3.0f}%|{bar}| {postfix}")

    def callback(fraction: float, message: str) -> None:
        bar.n = round(fraction * total)
        bar.set_postfix_str(message[:60], refresh=False)
        bar.refresh()
        if fraction >= 1.0:
            bar.close()

    return callback
