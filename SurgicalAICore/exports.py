"""Lazy re-exports for package ``__init__`` files.

A wing's ``__init__`` names its public API without importing it: ``from SurgicalDepthLib.depth import
load_depth_model`` imports ``depth.model`` (and torch) only then. This keeps the faces' start-up light
and means a package's ``__init__`` adds no import edge of its own (no cycle can hide there).
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_exports(package: str, table: Mapping[str, tuple[str, ...]]) -> tuple[Callable, Callable, list[str]]:
    """``__getattr__``, ``__dir__`` and ``__all__`` for a package exporting ``{module: names}``."""
    where = {name: module for module, names in table.items() for name in names}

    def __getattr__(name: str):
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    def __dir__() -> list[str]:
        return sorted(where)

    return __getattr__, __dir__, sorted(where)
