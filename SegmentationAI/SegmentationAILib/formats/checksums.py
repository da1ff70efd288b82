"""Integrity and safe reading for model formats made elsewhere (nnU-Net folders, MONAI bundles).

Those folders carry no hash of their own: the first use records the SHA-256 of every file that is read
and later uses verify it (:mod:`SurgicalAICore.checksums`, shared with the depth formats).
Checkpoints are read with ``weights_only=True``; the only extra types allowed are numpy scalars
and dtypes (training logs store them), so a pickle that needs any other code is refused.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from SurgicalAICore.checksums import RECORD_NAME, verify_or_record
from SurgicalAICore.errors import ModelError

__all__ = ["RECORD_NAME", "safe_torch_load", "verify_or_record"]


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
