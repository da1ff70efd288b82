"""Native libraries' own messages kept off the user's terminal.

VTK, SimpleITK/GDCM, FFmpeg (inside OpenCV) and libpng print warnings and errors straight to stderr when
they meet a bad file, before the project's one-line error says the same in words. The helpers here keep
those messages instead: a reader puts the first one into its own error (:meth:`Messages.reason`), and the
user sees one line. Each is narrow (one read); settings are restored afterwards.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator

MAX_REASON = 160


class Messages:
    """Text a library printed inside a ``with`` block; filled when the block ends."""

    def __init__(self) -> None:
        self.text = ""
        self.replay_needed = False

    def replay(self) -> None:
        """Print the kept text after all (the read worked: its warnings are shown as they always were)."""
        if self.text:
            sys.stderr.write(self.text)
            sys.stderr.flush()

    def lines(self) -> list[str]:
        return [line for line in (_printable(x) for x in self.text.splitlines()) if line]

    def reason(self) -> str:
        """``" (library: first message)"`` to append to a one-line error, or ``""`` when nothing was printed."""
        first = self.first()
        return f" ({first})" if first else ""

    def first(self) -> str:
        """The first error message, else the first of any kind."""
        found = self.lines()
        errors = [line for line in found if "error" in line.lower()]
        return (errors or found or [""])[0][:MAX_REASON]


def _printable(text: str) -> str:
    """One tidy line: no terminal colour codes, no binary bytes a garbage file put into the message."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    return " ".join("".join(c for c in text if c.isprintable() and c.isascii()).split())


class _VTKMessages(Messages):
    def lines(self) -> list[str]:
        # vtkStringOutputWindow: "ERROR: In <file>, line <n>\n<Class> (0x...): <message>\n..." per message
        found = []
        for block in re.split(r"\n\s*\n", self.text):
            body = block.strip().splitlines()[1:2]
            if body:
                message = _printable(re.sub(r"^\w+ \(0x[0-9a-fA-F]+\): ", "", body[0]))
                if message:
                    found.append(f"VTK: {message}")
        return found


@contextlib.contextmanager
def vtk_messages() -> Iterator[Messages]:
    """VTK errors and warnings raised inside the block are kept (output window and logger), not printed."""
    import vtk

    messages = _VTKMessages()
    window = vtk.vtkStringOutputWindow()
    old_window = vtk.vtkOutputWindow.GetInstance()
    old_verbosity = vtk.vtkLogger.ConvertToVerbosity(vtk.vtkLogger.GetCurrentVerbosityCutoff())
    vtk.vtkOutputWindow.SetInstance(window)
    vtk.vtkLogger.SetStderrVerbosity(vtk.vtkLogger.VERBOSITY_OFF)
    try:
        yield messages
    finally:
        text = window.GetOutput() or ""  # bytes when a garbage file's bytes made it into a message
        messages.text = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text
        vtk.vtkOutputWindow.SetInstance(old_window)
        vtk.vtkLogger.SetStderrVerbosity(old_verbosity)


@contextlib.contextmanager
def sitk_warnings_off() -> Iterator[None]:
    """ITK/GDCM warnings (e.g. 'No Series were found' while a folder is scanned) are not printed."""
    import SimpleITK as sitk

    old = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(old)


def quiet_ffmpeg() -> None:
    """OpenCV's FFmpeg backend logs decoder complaints ('moov atom not found') to stderr; read once, at the
    backend's first use. A user who sets OPENCV_FFMPEG_LOGLEVEL keeps their own level."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET


@contextlib.contextmanager
def native_stderr() -> Iterator[Messages]:
    """What native code (libpng inside OpenCV) writes to file descriptor 2 inside the block is kept.

    A read that failed puts the text into its error; one that worked calls :meth:`Messages.replay`, so
    nothing is lost (also what another thread printed meanwhile). An exception replays it too."""
    messages = Messages()
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable descriptor 2 (embedded interpreters): leave output alone
        yield messages
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield messages
        except BaseException:
            messages.replay_needed = True
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            messages.text = sink.read().decode("utf-8", errors="replace")
            if messages.replay_needed:
                messages.replay()
