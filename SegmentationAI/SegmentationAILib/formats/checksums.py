"""Integrity and safe reading for model formats made elsewhere (nnU-Net folders, MONAI bundles).

Those folders carry no hash of their own, so the first use records the SHA-256 of every file that
is read (trust on first use) in ``surgicalai.sha256`` inside the folder, in ``sha256sum`` format;
later uses verify it. A user who has published hashes writes that file themselves to pin them.
Checkpoints are read with ``weights_only=True``; the only extra types allowed are numpy scalars
and dtypes (training logs store them), so a pickle that needs any other code is refused.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from SurgicalAICore.errors import ModelError
from SurgicalAICore.model_folder import sha256_of

RECORD_NAME = "surgicalai.sha256"


def _read_record(path: Path) -> dict[str, str]:
    entries: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or len(parts[0]) != 64:
            raise ModelError(f"Checksum file {path} line {n} is not '<sha256>  <file>'.")
        entries[parts[1].strip().lstrip("*")] = parts[0].lower()
    return entries


def _write_record(path: Path, hashes: dict[str, str]) -> bool:
    """Write atomically; False where the folder is read-only (the model is used, unrecorded)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    except OSError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.writelines(f"{digest}  {name}\n" for name, digest in sorted(hashes.items()))
    os.replace(tmp, path)
    return True


def verify_or_record(folder: Path, files: Iterable[Path]) -> str:
    """Check ``files`` (inside ``folder``) against the folder's record, or record them on first use.

    Returns ``"verified"``, ``"recorded"`` or ``"unrecorded"`` (first use in a read-only folder)."""
    folder = Path(folder)
    names = sorted({Path(f).resolve().relative_to(folder.resolve()).as_posix() for f in files})
    record = folder / RECORD_NAME
    if record.is_file():
        expected = _read_record(record)
        for name in names:
            if name not in expected:
                raise ModelError(f"{folder / name} is not in {record.name}; delete that file to trust the folder "
                                 "as it is now, or add the file's SHA-256 to it.")
            actual = sha256_of(folder / name)
            if actual != expected[name]:
                raise ModelError(f"{folder / name} does not match its SHA-256 in {record.name} (expected "
                                 f"{expected[name][:12]}…, got {actual[:12]}…): the file is corrupt or was changed.")
        return "verified"
    hashes = {name: sha256_of(folder / name) for name in names}
    return "recorded" if _write_record(record, hashes) else "unrecorded"


def _numpy_safe_globals() -> list[Any]:
    """Numpy scalar/array reconstructors and dtype classes: data, not code."""
    from numpy.dtypes import (BoolDType, Float16DType, Float32DType, Float64DType, Int8DType, Int16DType,
                              Int32DType, Int64DType, UInt8DType, UInt16DType, UInt32DType, UInt64DType)

    multiarray = getattr(np, "_core", np).multiarray
    return [multiarray.scalar, multiarray._reconstruct, np.ndarray, np.dtype, BoolDType, Float16DType,
            Float32DType, Float64DType, Int8DType, Int16DType, Int32DType, Int64DType, UInt8DType, UInt16DType,
            UInt32DType, UInt64DType]


def safe_torch_load(path: Path) -> Any:
    """``torch.load`` with ``weights_only=True`` (plus numpy scalars); a clear refusal for anything else."""
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for unsafe or corrupt files
        text = str(error)
        if "Unsupported global" in text or "weights_only" in text.lower():
            culprit = next((line.split("GLOBAL", 1)[1].split()[0] for line in text.splitlines()
                            if "GLOBAL" in line), "a Python object")
            raise ModelError(f"Refused to load {path}: it is a pickle that needs arbitrary code ({culprit}); "
                             "only tensors, numbers, strings and containers are read.") from None
        raise ModelError(f"Cannot read {path}: {text.splitlines()[0] if text else type(error).__name__}") from None
