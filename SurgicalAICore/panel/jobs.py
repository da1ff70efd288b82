"""Long panel work off the GUI thread: one job at a time, results applied to the scene on the caller's thread.

``start(work, apply)`` runs ``work(progress, cancel)`` on a worker thread: it may only compute on arrays
and objects that no scene holds. The caller (a Slicer ``qt.QTimer``, a trame loop, or a test) calls
:meth:`JobRunner.poll` on its own thread; ``poll`` takes the newest progress and, once the work has
finished, calls ``apply(result)`` there, where touching MRML is safe. Cancel uses the shared
:class:`~SurgicalAICore.progress.CancelToken`; errors become one-line messages, never tracebacks in a dialog.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from SurgicalAICore.errors import OperationCancelled, SurgicalAIError
from SurgicalAICore.progress import CancelToken

CANCELLED_MESSAGE = "Cancelled; nothing was changed."


def error_message(error: BaseException) -> str:
    """What a user reads for ``error``: the message of our own errors, the kind and message of others."""
    if isinstance(error, OperationCancelled):
        return CANCELLED_MESSAGE
    if isinstance(error, SurgicalAIError):
        return str(error)
    return f"{type(error).__name__}: {error}"


class JobRunner:
    """Runs one job at a time on a worker thread; the view reads ``running``, ``fraction``, ``message``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._cancel: CancelToken | None = None
        self._apply: Callable[[Any], Any] | None = None
        self._box: dict = {}  # this job's outcome: ("result", value) or ("error", exception) under "outcome"
        self.name = ""
        self.fraction = 0.0
        self.message = ""
        self.error: str | None = None  # the last job's failure, one line (None when it succeeded)
        self.result: Any = None  # what the last job's apply returned
        self.outcome = ""  # how the last job ended: "done", "cancelled" or "failed" ("" before the first)

    @property
    def running(self) -> bool:
        """True from start until ``poll`` has applied (or dropped) the outcome."""
        return self._thread is not None

    def start(self, work: Callable[[Callable[[float, str], None], CancelToken], Any],
              apply: Callable[[Any], Any] | None = None, name: str = "") -> CancelToken:
        if self.running:
            raise SurgicalAIError(f"{self.name or 'A job'} is still running: wait for it or cancel it first.")
        self._cancel = CancelToken()
        # each job writes into its own box: a worker abandoned by shutdown() cannot touch a later job
        self._apply, self._box = apply, {}
        self.name, self.fraction, self.message, self.error, self.result = name, 0.0, "Starting...", None, None
        self.outcome = ""
        cancel, box = self._cancel, self._box

        def progress(fraction: float, message: str) -> None:
            cancel.raise_if_cancelled()
            with self._lock:
                if self._box is box:
                    self.fraction, self.message = float(fraction), message

        def run() -> None:
            try:
                outcome = ("result", work(progress, cancel))
            except BaseException as error:  # reported by poll() on the caller's thread
                outcome = ("error", error)
            with self._lock:
                box["outcome"] = outcome

        self._thread = threading.Thread(target=run, name=f"SurgicalAI {name}", daemon=True)
        self._thread.start()
        return cancel

    def cancel(self) -> None:
        if self._cancel is not None and self.running:
            self._cancel.cancel()
            self.message = "Cancelling..."

    def poll(self) -> bool:
        """Apply a finished job's result on this thread; True when a job finished in this call."""
        if self._thread is None:
            return False
        with self._lock:
            outcome = self._box.get("outcome")
        if outcome is None:
            return False
        self._thread.join()
        self._thread = None
        kind, value = outcome
        if kind == "result" and self._cancel is not None and self._cancel.cancelled:
            kind, value = "error", OperationCancelled()  # cancelled after the last check: still apply nothing
        if kind == "result":
            try:
                self.result = self._apply(value) if self._apply is not None else value
                self.fraction, self.message, self.outcome = 1.0, self.message or "Done.", "done"
            except BaseException as error:
                kind, value = "error", error
        if kind == "error":
            self.error = error_message(value)
            self.message = self.error
            self.outcome = "cancelled" if isinstance(value, OperationCancelled) else "failed"
            if not isinstance(value, (SurgicalAIError, OperationCancelled)):
                logging.error("%s failed", self.name or "job", exc_info=value)
        return True

    def status(self) -> dict:
        """What any view shows of the job (the web face serialises this); ``state`` is "running", how the
        last job ended ("done", "cancelled", "failed") or "idle" before the first."""
        state = "running" if self.running else self.outcome or "idle"
        return {"running": self.running, "state": state, "fraction": self.fraction, "message": self.message,
                "error": self.error}

    def wait(self, timeout: float = 60.0, poll_s: float = 0.01) -> bool:
        """Poll until the job is done (tests, scripts, self-tests); False on timeout."""
        end = time.monotonic() + timeout
        while self.running:
            if self.poll():
                return True
            if time.monotonic() > end:
                return False
            time.sleep(poll_s)
        return True

    def shutdown(self, timeout: float = 10.0) -> None:
        """Cancel and wait for the worker (panel cleanup, scene close, application exit); applies nothing."""
        if self._thread is not None:
            if self._cancel is not None:
                self._cancel.cancel()
            self._thread.join(timeout)
            self._thread, self._box = None, {}
