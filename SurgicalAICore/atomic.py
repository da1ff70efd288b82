"""Atomic outputs: a file or folder appears complete, or not at all.

Everything the extension writes for a user goes through these: the result is built under a hidden
temporary name beside its destination (same file system, so the final move is one ``os.replace``),
given normal permissions (temporary files are owner-only), and moved into place only when complete;
on any error the temporary is removed and the destination is as before.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def publish(tmp: str | Path, path: str | Path) -> Path:
    """Move a finished temporary file or folder into place with normal permissions."""
    mode = (0o777 if Path(tmp).is_dir() else 0o666) & ~_umask()
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return Path(path)


@contextlib.contextmanager
def atomic_file(path: str | Path, suffix: str = "", keep_name: bool = False) -> Iterator[Path]:
    """``with atomic_file(out) as tmp: write(tmp)``: ``out`` appears only if the block finished.

    ``suffix`` keeps the extension a writer may need to choose its format (``.nii.gz``, ``.png``);
    ``keep_name``: the temporary has ``out``'s own name, in a hidden folder beside it (a writer that
    names what it stores inside after the file, like Slicer's ``.mrb`` bundles)."""
    path = Path(path)
    folder = None
    if keep_name:
        folder = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        tmp = folder / path.name
    else:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        publish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path, replace: bool = False) -> Iterator[Path]:
    """``with atomic_dir(out) as tmp: fill(tmp)``: the folder ``out`` appears whole, or not at all.

    ``replace``: an existing ``out`` is swapped out only once the new one is complete."""
    path = Path(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        from SurgicalAICore.signals import signals_deferred

        old = None
        with signals_deferred():  # an interrupt never leaves the old folder moved aside and the new one not in
            if path.exists() and replace:
                old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
                os.replace(path, old / path.name)
            publish(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_atomic(path: str | Path, write: Callable[[Path], Any], suffix: str = "") -> Path:
    """Call ``write(tmp)`` and move the result to ``path``."""
    with atomic_file(path, suffix) as tmp:
        write(tmp)
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_atomic(path, lambda p: p.write_text(text, encoding="utf-8"))


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=2) + "\n")


@contextlib.contextmanager
def atomic_files(paths: list[str | Path], suffixes: list[str] | None = None) -> Iterator[list[Path]]:
    """``with atomic_files([a, b]) as (ta, tb): ...``: the outputs of one command appear together or not at all.

    Each temporary lies beside its destination; once the block finished they are all moved into place
    with SIGINT/SIGTERM held back, so an interrupt never leaves one without the other."""
    from SurgicalAICore.signals import signals_deferred

    paths = [Path(p) for p in paths]
    suffixes = suffixes or [""] * len(paths)
    temps: list[Path] = []
    try:
        for path, suffix in zip(paths, suffixes, strict=True):
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
            os.close(fd)
            temps.append(Path(name))
        yield temps
        with signals_deferred():
            for tmp, path in zip(temps, paths, strict=True):
                publish(tmp, path)
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
