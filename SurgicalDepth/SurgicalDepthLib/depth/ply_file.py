"""A checked PLY vertex reader: the header is validated and the body's size checked before any read.

VTK's PLY reader trusts the header: vertices without y/z properties, or a garbage or truncated body,
crash the process or return uninitialised memory as points. This reader parses the header itself,
needs float x/y/z vertex properties, checks that the body holds every vertex (binary: by size;
ASCII: by token count) and reads with numpy only, so a bad file is one :class:`InputError`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from SurgicalAICore.errors import InputError

_TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
          "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
          "float": "f4", "float32": "f4", "double": "f8", "float64": "f8"}
_FORMATS = {"ascii": None, "binary_little_endian": "<", "binary_big_endian": ">"}
MAX_HEADER_BYTES = 64 * 1024


def _header(path: Path, raw: bytes):
    end = raw.find(b"end_header")
    if not raw.startswith(b"ply") or end < 0:
        raise InputError(f"{path} is not a PLY file (no 'ply' magic or no end_header).")
    body_start = raw.index(b"\n", end) + 1 if b"\n" in raw[end:] else len(raw)
    try:
        lines = raw[:end].decode("ascii").splitlines()
    except UnicodeDecodeError:
        raise InputError(f"{path}: the PLY header is not ASCII text.") from None
    fmt, elements = None, []
    for line in lines[1:]:
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format" and len(words) >= 2 and words[1] in _FORMATS:
            fmt = words[1]
        elif words[0] == "element" and len(words) == 3 and words[2].isdigit():
            elements.append((words[1], int(words[2]), []))
        elif words[0] == "property" and elements and len(words) == 3 and words[1] in _TYPES:
            elements[-1][2].append((words[2], _TYPES[words[1]]))
        elif words[0] == "property" and elements and len(words) == 5 and words[1] == "list":
            elements[-1][2].append((words[4], "list"))
        else:
            raise InputError(f"{path}: unsupported PLY header line {line.strip()[:60]!r}.")
    if fmt is None:
        raise InputError(f"{path}: the PLY header has no valid 'format' line.")
    return fmt, elements, body_start


def _vertex_element(path: Path, elements):
    if not elements or elements[0][0] != "vertex":
        raise InputError(f"{path}: the first PLY element must be 'vertex'.")
    _, count, props = elements[0]
    names = [name for name, _ in props]
    if any(kind == "list" for _, kind in props):
        raise InputError(f"{path}: PLY vertices with list properties are not supported.")
    missing = [axis for axis in "xyz" if axis not in names]
    if missing:
        raise InputError(f"{path}: the PLY vertices lack the {'/'.join(missing)} propert"
                         f"{'y' if len(missing) == 1 else 'ies'}.")
    if len(set(names)) != len(names):
        raise InputError(f"{path}: duplicate PLY vertex property names.")
    return count, props


def read_ply_arrays(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """(points (N, 3) float32, colours (N, 3) uint8 or None) of a PLY file's vertices."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Point cloud file not found: {path}")
    with open(path, "rb") as f:
        head = f.read(MAX_HEADER_BYTES)
    fmt, elements, body_start = _header(path, head)
    count, props = _vertex_element(path, elements)
    size = path.stat().st_size - body_start
    if fmt == "ascii":
        if count * 2 * len(props) > max(size, 0):  # each value is at least one character and a separator
            raise InputError(f"{path} is truncated: {count} vertices declared, {max(size, 0)} bytes of data.")
        table = _read_ascii(path, body_start, count, props)
    else:
        dtype = np.dtype([(name, _FORMATS[fmt] + kind) for name, kind in props])
        if size < count * dtype.itemsize:
            raise InputError(f"{path} is truncated: {count} vertices need {count * dtype.itemsize} bytes, "
                             f"the file holds {max(size, 0)}.")
        table = np.fromfile(path, dtype=dtype, count=count, offset=body_start)
    points = np.stack([table[a].astype(np.float32) for a in "xyz"], axis=1).reshape(-1, 3)
    names = [name for name, _ in props]
    rgb = next((c for c in (("red", "green", "blue"), ("r", "g", "b")) if all(n in names for n in c)), None)
    colors = np.stack([table[c] for c in rgb], axis=1).astype(np.uint8) if rgb else None
    return points, colors


def _read_ascii(path: Path, body_start: int, count: int, props) -> np.ndarray:
    dtype = np.dtype([(name, kind) for name, kind in props])
    with open(path, "rb") as f:
        f.seek(body_start)
        lines = [f.readline() for _ in range(count)]
    try:
        values = [line.split() for line in lines]
        if any(len(v) != len(props) for v in values):
            raise ValueError("a vertex line has the wrong number of values")
        table = np.array([tuple(float(x) for x in v) for v in values], dtype=np.float64).reshape(-1, len(props))
    except ValueError as error:
        raise InputError(f"{path}: bad or missing PLY vertex data ({count} vertices declared): {error}") from None
    out = np.empty(count, dtype=dtype)
    for i, (name, _) in enumerate(props):
        out[name] = table[:, i]
    return out
