"""Which loader reads a model path: a table of (name, can_load, load), tried in order.

This extension's own model folders (``model.json``) are the default and are handled by
``seg_model.load_segmentation_model`` itself; the formats here are the ones models made elsewhere
ship in. A new format is one file with ``can_load(path)`` and ``load(path, device)`` and one row.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


@dataclass(frozen=True)
class FormatLoader:
    name: str
    can_load: Callable[[Path], bool]
    load: Callable[[Path, torch.device], Any]


def _nnunet() -> FormatLoader:
    from SegmentationAILib.formats import nnunet

    return FormatLoader("nnU-Net v2 result folder", nnunet.can_load, nnunet.load_nnunet_folder)


def _monai_bundle() -> FormatLoader:
    from SegmentationAILib.formats import monai_bundle

    return FormatLoader("MONAI bundle", monai_bundle.can_load, monai_bundle.load_monai_bundle)


LOADERS: tuple[Callable[[], FormatLoader], ...] = (_nnunet, _monai_bundle)


def find_loader(path: str | Path | None) -> FormatLoader | None:
    """The loader for a foreign model format at ``path``, or None (an own model folder, or nothing)."""
    if path is None or not str(path).strip():
        return None
    folder = Path(path)
    if not folder.is_dir() or (folder / "model.json").exists():
        return None
    for make in LOADERS:
        loader = make()
        if loader.can_load(folder):
            return loader
    return None
