"""A background job: heavy work in a worker thread, its result applied to the scene on the server's
own thread, so the event loop (and every other client) keeps being served meanwhile.

MRML and VTK rendering are not thread-safe: ``work`` must not touch the live scene; ``finish`` runs
where ``poll`` is called (the server's loop) and is the only place the live scene changes.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from SurgicalAICore.errors import OperationCancelled, SurgicalAIError
from SurgicalAICore.progress import CancelToken

Work = Callable[[Callable[[float, str], None], CancelToken], Any]


class Job:
    def __init__(self, name: str, work: Work, finish: Callable[[Any], str | None]):
        self.name = name
        self.cancel_token = CancelToken()
        self.fraction = 0.0
        self.message = "starting"
        self.state = "running"  # running, done, cancelled, failed
        self._work = work
        self._finish = finish
        self._result: Any = None
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"surgicalai-{name}", daemon=True)
        self._finished = False

    def start(self) -> Job:
        self._thread.start()
        return self

    def cancel(self) -> None:
        self.message = "cancelling"
        self.cancel_token.cancel()

    def _progress(self, fraction: float, message: str) -> None:
        with self._lock:
            self.fraction, self.message = float(fraction), message

    def _run(self) -> None:
        try:
            self._result = self._work(self._progress, self.cancel_token)
        except BaseException as error:  # reported by poll() on the server's thread
            self._error = error

    @property
    def running(self) -> bool:
        return not self._finished

    def poll(self) -> dict:
        """Status for the page; once the worker ended, applies the result (server thread) exactly once."""
        if not self._finished and not self._thread.is_alive():
            self._finished = True
            self._settle()
        with self._lock:
            return {"state": self.state, "fraction": self.fraction, "message": self.message}

    def wait(self, timeout: float | None = None) -> dict:
        """Block until done (tests and the CLI; the server polls instead)."""
        self._thread.join(timeout)
        return self.poll()

    def _settle(self) -> None:
        error = self._error
        if error is None:
            try:
                note = self._finish(self._result)
                self.state, self.fraction, self.message = "done", 1.0, note or "done"
                return
            except BaseException as failure:
                error = failure
        if isinstance(error, OperationCancelled) or self.cancel_token.cancelled:
            self.state, self.message = "cancelled", "cancelled; the scene is unchanged"
        elif isinstance(error, (SurgicalAIError, OSError)):
            self.state, self.message = "failed", str(error)
        else:
            self.state, self.message = "failed", f"unexpected error: {type(error).__name__}: {error}"
