"""One validation layer for the numbers and paths a user gives, shared by the CLI and the panel logic.

Every check raises :class:`InputError` with one line naming the option, so a bad value is refused
before any work starts and before anything is written: finite numbers in range, an output that is
not (and would not overwrite) an input, an output folder that exists and is writable, a rigid 4x4
matrix, and a size estimate before a large allocation.
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from SurgicalAICore.errors import InputError

# Largest single allocation the tools attempt without being told otherwise (bytes).
MAX_ALLOCATION_BYTES = 8 * 1024**3


def check_number(value, name: str, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, integer: bool = False) -> float | int:
    """``value`` if it is a finite number in [low, high] (``(low, high]`` with ``low_open``)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}.") from None
    if not math.isfinite(number):
        raise InputError(f"{name} must be a finite number, got {value!r}.")
    if integer and number != int(number):
        raise InputError(f"{name} must be a whole number, got {value!r}.")
    below = low is not None and (number <= low if low_open else number < low)
    above = high is not None and number > high
    if below or above:
        lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
        hi = "" if high is None else f"<= {high:g}"
        raise InputError(f"{name} must be {' and '.join(s for s in (lo, hi) if s)}, got {value!r}.")
    return int(number) if integer else number


def check_positive(value, name: str, high: float | None = None, integer: bool = False):
    return check_number(value, name, low=0, low_open=True, high=high, integer=integer)


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def check_output_not_input(output: str | Path, inputs: Iterable[str | Path | None], what: str = "output",
                           replaces_folder: bool = True) -> Path:
    """Refuse an output that is an input, an existing file inside an input folder, or (when the output
    folder is replaced whole, ``replaces_folder``) a folder that holds an input."""
    out = Path(output)
    for given in inputs:
        if given is None:
            continue
        source = Path(given)
        if _same_file(out, source):
            raise InputError(f"The {what} {out} is the input {source}; choose another name "
                             "(inputs are never overwritten).")
        if source.is_dir() and out.exists() and _inside(out, source):
            raise InputError(f"The {what} {out} would overwrite a file of the input folder {source}.")
        if replaces_folder and out.is_dir() and _inside(source, out):
            raise InputError(f"The {what} folder {out} holds the input {source}; replacing it would destroy it.")
    return out


def check_output_folder(output: str | Path, what: str = "output") -> Path:
    """The folder that will receive ``output`` must exist and be writable (nothing is created for it)."""
    out = Path(output)
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"The folder for the {what} does not exist: {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"The folder for the {what} is not writable: {parent}")
    return out


def check_rigid(matrix, name: str = "matrix", scale: bool = False, tolerance: float = 1e-3) -> np.ndarray:
    """A finite 4x4 rigid transform (rotation + translation; a uniform scale too with ``scale``):
    projective, reflecting, singular, sheared or anisotropically scaled matrices are refused."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (4, 4):
        raise InputError(f"The {name} must be a 4x4 matrix, got shape {m.shape}.")
    if not np.all(np.isfinite(m)):
        raise InputError(f"The {name} holds NaN or infinite values.")
    if not np.allclose(m[3], [0, 0, 0, 1], atol=tolerance):
        raise InputError(f"The {name} is projective (its last row is not 0 0 0 1); a rigid transform is needed.")
    rot = m[:3, :3]
    det = float(np.linalg.det(rot))
    if abs(det) < 1e-12:
        raise InputError(f"The {name} is singular; a rigid transform is needed.")
    if det < 0:
        raise InputError(f"The {name} is a reflection (negative determinant); a rigid transform is needed.")
    s = det ** (1 / 3) if scale else 1.0
    if not np.allclose(rot.T @ rot / s**2, np.eye(3), atol=tolerance * 10):
        what = "scaled, sheared or not orthonormal" if not scale else "sheared or anisotropically scaled"
        raise InputError(f"The {name} is {what}; a rigid transform is needed.")
    return m


def check_finite_array(array, name: str) -> np.ndarray:
    a = np.asarray(array)
    if a.dtype.kind in "fc" and not np.all(np.isfinite(a)):
        bad = int(np.count_nonzero(~np.isfinite(a)))
        raise InputError(f"The {name} holds {bad} NaN or infinite value(s).")
    return a


MAX_COORDINATE_MM = 1e7  # 10 km: anything larger is a unit or file error, and overflows the geometry


def check_coordinates(points, what: str, limit: float = MAX_COORDINATE_MM) -> np.ndarray:
    """Points whose coordinates are all within +-``limit`` mm (finite ones are assumed filtered already)."""
    pts = np.asarray(points)
    if pts.size and float(np.max(np.abs(pts))) > limit:
        raise InputError(f"The {what} has coordinates beyond {limit:g} mm; check its units.")
    return pts


def check_allocation(shape: Iterable[int], itemsize: int, what: str, limit: int = MAX_ALLOCATION_BYTES) -> int:
    """Refuse an allocation estimated above ``limit`` bytes before it is attempted."""
    dims = [int(d) for d in shape]
    if any(d <= 0 for d in dims):
        raise InputError(f"The {what} would be empty (shape {tuple(dims)}).")
    size = math.prod(dims) * int(itemsize)
    if size > limit:
        raise InputError(f"The {what} would need {size / 1024**3:.1f} GiB (shape {tuple(dims)}); "
                         f"the limit is {limit / 1024**3:.0f} GiB.")
    return size
