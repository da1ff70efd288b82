"""Post-processing of label maps: largest connected component per structure and hole filling."""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from scipy import ndimage


def labels_from_probabilities(probs: np.ndarray) -> np.ndarray:
    """Arg-max label map (uint8 if it fits) of ``[classes, k, j, i]`` probabilities."""
    labels = np.argmax(probs, axis=0)
    return labels.astype(np.uint8 if probs.shape[0] <= 256 else np.uint16)


def keep_largest_component(labels: np.ndarray, values: Iterable[int]) -> np.ndarray:
    """For each label value, keep only its largest 26-connected component (the rest becomes background)."""
    out = labels.copy()
    structure = np.ones((3, 3, 3), bool)
    for value in values:
        mask = labels == value
        if not mask.any():
            continue
        components, count = ndimage.label(mask, structure=structure)
        if count <= 1:
            continue
        sizes = np.bincount(components.ravel())
        sizes[0] = 0
        out[mask & (components != int(np.argmax(sizes)))] = 0
    return out


def fill_holes(labels: np.ndarray, values: Iterable[int]) -> np.ndarray:
    """Fill enclosed background holes of each structure (other structures are left alone)."""
    out = labels.copy()
    for value in values:
        mask = labels == value
        if not mask.any():
            continue
        filled = ndimage.binary_fill_holes(mask)
        out[filled & (out == 0)] = value
    return out


def largest_component_names(text: str | None) -> list[str] | None:
    """The class names of a ``--largest-component`` option (comma-separated, or 'all'); None when empty."""
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    return names or None


def largest_component_option(text: str | None) -> bool | list[str] | None:
    """The option as :func:`postprocess` takes it: True for 'all', the names, or None."""
    names = largest_component_names(text)
    return True if names == ["all"] else names


def postprocess(labels: np.ndarray, label_names: Mapping[int, str],
                largest_component: bool | Iterable[str] = False, fill: bool = False) -> np.ndarray:
    """Apply the model card's post-processing: ``largest_component`` is True (all), False or names."""
    if largest_component is True:
        lcc_values = list(label_names)
    elif largest_component:
        wanted = set(largest_component)
        lcc_values = [v for v, n in label_names.items() if n in wanted]
    else:
        lcc_values = []
    out = keep_largest_component(labels, lcc_values) if lcc_values else labels
    if fill:
        out = fill_holes(out, list(label_names))
    return out
