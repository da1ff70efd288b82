"""Per-segment statistics (voxel count, volume in mL), Dice overlap, and their table node / CSV forms."""
from __future__ import annotations

import csv
import os
from pathlib import Path
from collections.abc import Mapping, Sequence

import numpy as np
import SimpleITK as sitk

from SurgicalAICore.errors import InputError
from SurgicalAICore.atomic import atomic_file

COLUMNS = ("value", "name", "voxels", "volume_ml")


def label_statistics(labels: sitk.Image | np.ndarray, names: Mapping[int, str],
                     voxel_ml: float | None = None) -> list[dict]:
    """One row per label in ``names``: value, name, voxel count and volume in mL (0 when absent)."""
    if isinstance(labels, sitk.Image):
        voxel_ml = float(np.prod(labels.GetSpacing())) / 1000.0
        array = sitk.GetArrayViewFromImage(labels)
    else:
        array = np.asarray(labels)
        if voxel_ml is None:
            raise InputError("The voxel volume is needed to compute volumes from an array.")
    counts = np.bincount(array.ravel().astype(np.int64), minlength=max(names, default=0) + 1)
    return [{"value": int(v), "name": str(n), "voxels": int(counts[v]), "volume_ml": float(counts[v] * voxel_ml)}
            for v, n in sorted(names.items())]


def dice_scores(labels: np.ndarray, reference: np.ndarray, values: Sequence[int]) -> dict[int, float]:
    """Dice per label value (NaN when the label is absent from both)."""
    labels, reference = np.asarray(labels), np.asarray(reference)
    if labels.shape != reference.shape:
        raise InputError(f"Label maps differ in shape: {labels.shape} vs {reference.shape}.")
    out = {}
    for v in values:
        a, b = labels == v, reference == v
        denom = int(a.sum()) + int(b.sum())
        out[int(v)] = float("nan") if denom == 0 else 2.0 * int(np.logical_and(a, b).sum()) / denom
    return out


def write_statistics_csv(rows: list[dict], path: str | Path) -> Path:
    """Write the rows as CSV atomically (a temporary file renamed into place)."""
    path = Path(path)
    if not path.parent.is_dir() or not os.access(path.parent, os.W_OK):
        raise InputError(f"Cannot write the statistics to {path}: the folder is missing or not writable.")
    with atomic_file(path, ".csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{row[k]:.3f}" if k == "volume_ml" else row[k]) for k in COLUMNS})
    return path


def statistics_table_node(rows: list[dict], name: str = "Segment statistics"):
    """A table node (not yet in a scene) with one row per segment: value, name, voxels, volume (mL)."""
    import slicer  # MRML node classes only
    import vtk

    table = slicer.vtkMRMLTableNode()
    table.SetName(name)
    columns = [vtk.vtkIntArray(), vtk.vtkStringArray(), vtk.vtkIntArray(), vtk.vtkDoubleArray()]
    titles = ["Label value", "Segment", "Voxel count", "Volume [mL]"]
    for array, title in zip(columns, titles, strict=False):
        array.SetName(title)
        array.SetNumberOfValues(len(rows))
    for r, row in enumerate(rows):
        columns[0].SetValue(r, row["value"])
        columns[1].SetValue(r, row["name"])
        columns[2].SetValue(r, row["voxels"])
        columns[3].SetValue(r, row["volume_ml"])
    vtable = table.GetTable()
    for array in columns:
        vtable.AddColumn(array)
    table.SetColumnUnitLabel("Volume [mL]", "mL")
    return table


def rows_from_table_node(table) -> list[dict]:
    """Rows of a table made by :func:`statistics_table_node` (for checks and export)."""
    vtable = table.GetTable()
    return [{"value": int(vtable.GetValue(r, 0).ToInt()), "name": vtable.GetValue(r, 1).ToString(),
             "voxels": int(vtable.GetValue(r, 2).ToInt()), "volume_ml": float(vtable.GetValue(r, 3).ToDouble())}
            for r in range(vtable.GetNumberOfRows())]
