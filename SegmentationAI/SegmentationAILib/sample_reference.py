"""The bundled sample CT's reference labels mapped onto the default model's structures.

The TotalSegmentator example ships 117-class labels (``total_class_map.json``); the default
model segments a handful of abdominal structures, with all vertebrae merged into one.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from SurgicalAICore.resources import sample_data_dir

# (name, colour RGB 0..1, TotalSegmentator class names merged into it)
DEFAULT_STRUCTURES: list[tuple[str, tuple[float, float, float], tuple[str, ...]]] = [
    ("liver", (0.87, 0.51, 0.40), ("liver",)),
    ("spleen", (0.62, 0.22, 0.42), ("spleen",)),
    ("kidney_left", (0.72, 0.31, 0.21), ("kidney_left",)),
    ("kidney_right", (0.86, 0.44, 0.27), ("kidney_right",)),
    ("stomach", (0.85, 0.73, 0.53), ("stomach",)),
    ("aorta", (0.88, 0.12, 0.14), ("aorta",)),
    ("vertebrae", (0.95, 0.92, 0.78), tuple(f"vertebrae_{n}" for n in
                                          ["S1"] + [f"L{i}" for i in range(1, 6)] + [f"T{i}" for i in range(1, 13)]
                                          + [f"C{i}" for i in range(1, 8)])),
    ("gallbladder", (0.55, 0.78, 0.35), ("gallbladder",)),
    ("pancreas", (0.98, 0.82, 0.35), ("pancreas",)),
]


def sample_folder() -> Path:
    return sample_data_dir() / "TotalSegmentatorExample"


def sample_reference_path() -> Path:
    return sample_folder() / "example_seg_fast_force_split.nii.gz"


def default_labels() -> list[dict]:
    """Card ``labels`` of the default model."""
    return [{"value": n + 1, "name": name, "color": [float(c) for c in colour]}
            for n, (name, colour, _) in enumerate(DEFAULT_STRUCTURES)]


def map_reference(reference: sitk.Image) -> sitk.Image:
    """TotalSegmentator labels -> default-model labels (others become background), same grid."""
    class_map = json.loads((sample_folder() / "total_class_map.json").read_text())
    by_name = {name: int(value) for value, name in class_map.items()}
    lut = np.zeros(max(by_name.values()) + 1, np.uint8)
    for n, (_, _, sources) in enumerate(DEFAULT_STRUCTURES):
        for source in sources:
            lut[by_name[source]] = n + 1
    array = sitk.GetArrayFromImage(reference).astype(np.int64)
    out = sitk.GetImageFromArray(lut[np.clip(array, 0, len(lut) - 1)])
    out.CopyInformation(reference)
    return out


def sample_reference_labels() -> sitk.Image:
    """The sample CT's reference segmentation with the default model's label values."""
    return map_reference(sitk.ReadImage(str(sample_reference_path())))
