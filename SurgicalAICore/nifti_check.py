"""What SimpleITK's NIfTI reader hides: a truncated body (read as zeros) and NaN/Inf voxels (read as 0).

:func:`check_nifti_payload` reads the header itself, streams the (gzip) voxel data once and raises
:class:`InputError` if the data end early or a float volume holds non-finite values, so the NaN check
downstream can fire and half a volume of zeros is never segmented.
"""
from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from SurgicalAICore.errors import InputError

_FLOAT_TYPES = {16: "f4", 64: "f8"}  # NIfTI datatype codes of float32 / float64
_CHUNK = 16 * 1024 * 1024
MAX_BYTES = 2**40  # a header declaring more voxel data (or a later start) than this is corrupt


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def _header(head: bytes, path: Path):
    """(byte order, datatype, bits per voxel, voxel count, data offset) of a NIfTI-1 or -2 header."""
    for order in ("<", ">"):
        if len(head) >= 348 and struct.unpack(order + "i", head[:4])[0] == 348:
            dims = struct.unpack(order + "8h", head[40:56])
            datatype, bitpix = struct.unpack(order + "2h", head[70:74])
            offset = int(struct.unpack(order + "f", head[108:112])[0])
            return order, datatype, bitpix, dims, max(offset, 348)
        if len(head) >= 540 and struct.unpack(order + "i", head[:4])[0] == 540:
            datatype, bitpix = struct.unpack(order + "2h", head[12:16])
            dims = struct.unpack(order + "8q", head[16:80])
            offset = int(struct.unpack(order + "q", head[168:176])[0])
            return order, datatype, bitpix, dims, max(offset, 540)
    raise InputError(f"{path} is not a NIfTI file (bad header).")


def check_nifti_payload(path: str | Path) -> None:
    path = Path(path)
    try:
        with _open(path) as f:
            head = f.read(544)
            order, datatype, bitpix, dims, offset = _header(head, path)
            ndim = int(dims[0])
            if not 1 <= ndim <= 7 or any(d < 1 for d in dims[1:ndim + 1]):
                return  # SimpleITK refuses such headers itself
            need = float(np.prod([float(d) for d in dims[1:ndim + 1]])) * max(int(bitpix), 8) / 8
            if need > MAX_BYTES or offset > MAX_BYTES:
                raise InputError(f"Cannot read image file {path}: its header declares an impossible size.")
            need = int(need)
            first = head[offset:]
            _skip(f, offset - len(head))
            got, bad = _scan(f, need, order + _FLOAT_TYPES[datatype] if datatype in _FLOAT_TYPES else None,
                             first[:need])
    except (EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise InputError(f"Cannot read image file {path}: the compressed data are cut short or corrupt "
                         f"({' '.join(str(error).split())[:80]}).") from None
    if got < need:
        raise InputError(f"Cannot read image file {path}: it is truncated ({got} of {need} bytes of voxel data).")
    if bad:
        raise InputError(f"Image file {path} holds {bad} NaN or infinite voxel(s); fix or mask them first.")


def _skip(f, count: int) -> None:
    while count > 0:
        chunk = f.read(min(_CHUNK, count))
        if not chunk:
            return
        count -= len(chunk)


def _scan(f, need: int, dtype: str | None, first: bytes = b"") -> tuple[int, int]:
    """(bytes read up to ``need``, non-finite voxels when ``dtype`` is a float type); ``first``: the
    voxel bytes already read with the header."""
    got, bad, carry = 0, 0, b""
    while got < need:
        chunk = first or f.read(min(_CHUNK, need - got))
        first = b""
        if not chunk:
            break
        got += len(chunk)
        if dtype is not None:
            data = carry + chunk
            size = np.dtype(dtype).itemsize
            usable = len(data) - len(data) % size
            values = np.frombuffer(data[:usable], dtype)
            bad += int(values.size - np.count_nonzero(np.isfinite(values)))
            carry = data[usable:]
    return got, bad
