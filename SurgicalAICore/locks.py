"""One lock per run folder: two runs that would write the same output refuse to share it.

``with run_lock(output):`` takes an exclusive, non-blocking ``fcntl`` lock on a hidden file beside
``output`` (``.<name>.lock``). A second run asking for the same output fails at once with one line
naming the holder's process id; the lock goes with its process, so a killed run never leaves a stale
lock behind (the file is removed on a clean exit).
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from SurgicalAICore.errors import InputError


def lock_path(output: str | Path) -> Path:
    out = Path(output)
    return out.with_name(f".{out.name}.lock")


def _acquire(path: Path) -> int:
    for _ in range(5):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise InputError(f"Another run (process {holder}) is writing {path.name[1:-5]} in {path.parent}; "
                             "wait for it to finish or choose another output.") from None
        # the holder before us may have removed the file after we opened it: lock the file that is there
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                os.ftruncate(fd, 0)
                os.write(fd, str(os.getpid()).encode())
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)
    raise InputError(f"Could not lock {path}; try again.")


@contextlib.contextmanager
def run_lock(output: str | Path) -> Iterator[Path]:
    """Hold the lock of ``output`` (a model folder, a run folder) for the block."""
    path = lock_path(output)
    if not path.parent.is_dir():
        raise InputError(f"The folder for {Path(output).name} does not exist: {path.parent}")
    fd = _acquire(path)
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)
