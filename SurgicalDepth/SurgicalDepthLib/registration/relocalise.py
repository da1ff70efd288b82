"""The tracker's relocalising global search, run off the frame path in one worker thread.

A global search costs about a second of CPU (more under load); run inside a frame it made that frame seconds
late (the p99 of docs/BENCHMARKS_latency.md). Here the frame that needs it only submits it and returns at once
(the tracker holds the last good pose meanwhile); a later frame takes the found pose once it is ready and
verifies it against its own, newer cloud before anything is published. One search at a time: a new one
replaces (cancels) the one in flight, and a trusted frame cancels it, since it is no longer needed. numpy and
torch release the GIL in their kernels, so the worker uses the second core while the frame path runs.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from SurgicalAICore.progress import CancelToken


WORKER_NICENESS = 5  # the search is background work: on a busy machine the frame path gets the CPU first


def _lower_priority() -> None:
    """Lower the worker thread's scheduling priority (Linux: a thread has its own nice value)."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + WORKER_NICENESS)
    except (AttributeError, OSError):  # not Linux, or not permitted: the search runs at the caller's priority
        pass


@dataclass
class SearchJob:
    future: Future
    cancel: CancelToken
    frame: int  # the tracker's frame count when the search was submitted (its cloud's frame)


class BackgroundSearch:
    """Runs ``search(cloud, prior, seed, cancel) -> pose`` in one daemon worker thread, one job at a time."""

    def __init__(self, search):
        self.search = search
        self.job: SearchJob | None = None
        self._pool: ThreadPoolExecutor | None = None

    @property
    def running(self) -> bool:
        return self.job is not None and not self.job.future.done()

    @property
    def pending(self) -> bool:
        """A search was submitted and its pose not yet taken (running, or done and waiting)."""
        return self.job is not None

    def submit(self, cloud: np.ndarray, prior: np.ndarray, seed: int, frame: int) -> None:
        self.cancel()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relocalise",
                                            initializer=_lower_priority)
        token = CancelToken()
        future = self._pool.submit(self.search, np.array(cloud, copy=True), np.array(prior, copy=True), seed, token)
        self.job = SearchJob(future, token, frame)

    def take(self) -> np.ndarray | None:
        """The found pose when the search has finished (then forgotten), None while it runs or if it failed."""
        if self.job is None or not self.job.future.done():
            return None
        job, self.job = self.job, None
        if job.future.cancelled() or job.future.exception() is not None:
            return None
        return job.future.result()

    def cancel(self) -> None:
        """Drop the job in flight: the search stops at its next batch, its pose is never taken."""
        if self.job is not None:
            self.job.cancel.cancel()
            self.job.future.cancel()
            self.job = None

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job in flight has finished (tests, or a caller with time to spare); True if done."""
        if self.job is None:
            return True
        try:
            self.job.future.exception(timeout=timeout)
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        """Cancel the job and stop the worker thread (waits for the search to reach its next batch)."""
        self.cancel()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
