"""The one place where the compute device is chosen (cuda / mps / cpu)."""
from __future__ import annotations

import logging
from typing import TypeVar
from collections.abc import Callable

import torch

from SurgicalAICore.errors import InputError

log = logging.getLogger(__name__)
T = TypeVar("T")


def select_device(preference: str | None = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then CPU; an explicit choice that is unavailable is an error."""
    pref = (preference or "auto").lower()
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if pref.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(f"Device '{preference}' was asked for but CUDA is not available here; use --device cpu.")
        return torch.device(pref)
    if pref == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise InputError("Device 'mps' was asked for but Apple MPS is not available here.")
        return torch.device("mps")
    if pref == "cpu":
        return torch.device("cpu")
    raise InputError(f"Unknown device '{preference}': use auto, cpu, cuda or mps.")


def is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()


def run_with_cpu_fallback(fn: Callable[[torch.device], T], device: torch.device,
                          notify: Callable[[str], None] | None = None) -> T:
    """Run ``fn(device)``; on a GPU out-of-memory error run it again on the CPU and say so."""
    try:
        return fn(device)
    except RuntimeError as error:
        if device.type == "cpu" or not is_out_of_memory(error):
            raise
        if device.type == "cuda":
            torch.cuda.empty_cache()
        message = f"{device.type.upper()} ran out of memory; running again on the CPU (slower)."
        log.warning(message)
        if notify is not None:
            notify(message)
        return fn(torch.device("cpu"))
