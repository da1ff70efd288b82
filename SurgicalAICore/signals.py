"""SIGINT and SIGTERM cancel a command the same clean way, and a group of outputs is published whole.

The console command turns SIGTERM into :class:`Terminated`, a ``KeyboardInterrupt``, so every
``with atomic_file/atomic_dir`` block removes its temporaries exactly as on Ctrl-C (a bare SIGTERM
would kill the process and leave hidden ``.tmp`` files). :func:`signals_deferred` holds both signals
back while several finished files are moved into place, so a result and its companion (a
segmentation and its statistics CSV) appear together or not at all.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

CANCEL_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """SIGTERM received: cancel like Ctrl-C (exit status 143 rather than 130)."""


def _raise_terminated(signum, frame):
    raise Terminated()


def install_cancel_handlers() -> None:
    """SIGTERM cancels like SIGINT (main thread only; elsewhere the defaults stay).

    A process inherits ignored and blocked signals from whatever started it (a launcher that ignores SIGINT,
    a parent inside a deferred section); a command must stay cancellable whatever its parent did, so both
    signals are unblocked and SIGINT raises ``KeyboardInterrupt`` as in a plain interpreter."""
    if threading.current_thread() is threading.main_thread():
        signal.pthread_sigmask(signal.SIG_UNBLOCK, CANCEL_SIGNALS)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _raise_terminated)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Block SIGINT/SIGTERM in this block; one that arrives is delivered right after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, CANCEL_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextlib.contextmanager
def handlers_kept() -> Iterator[None]:
    """Put this process's SIGINT/SIGTERM handlers back after the block: native code run inside it (COLMAP's glog)
    may install its own, and a stop signal after it would then kill the process without a clean cancel."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.getsignal(sig) for sig in CANCEL_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            if handler is not None:
                signal.signal(sig, handler)
