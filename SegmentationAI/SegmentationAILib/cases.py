"""Labelled cases for training and evaluation: from folders, from a list file, or from the scene.

A case is one subject: one image per input channel (e.g. FLAIR + T1c), all on one voxel grid, and
one or more label images on that same grid (e.g. a tumour label map and a brain mask). Label
images are kept as read (raw values); :mod:`label_mapping` turns them into training classes.

Folder layouts understood by :func:`cases_from_folder`:

- one sub-folder per case, files found by glob patterns inside it (``Flair*.nii.gz``);
- a flat folder where the ``*`` of the first channel pattern is the case name
  (``*_ct.nii.gz`` + ``*_oars.nii.gz`` gives cases ``train_pt_100``, ...).
"""

from __future__ import annotations

import csv
import fnmatch
import json
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from SurgicalAICore.errors import InputError

PathLike = str | Path
GEOMETRY_TOLERANCE_MM = 1e-3  # origins/spacings closer than this are the same grid
DIRECTION_TOLERANCE = 1e-4


@dataclass
class Case:
    """One labelled subject. ``labels`` maps a label-source name to its label image."""

    name: str
    images: list[sitk.Image]
    labels: dict[str, sitk.Image]
    source: str = ""
    segment_names: dict[str, dict[int, str]] = field(default_factory=dict)  # per source: value -> name

    @property
    def spacing(self) -> np.ndarray:
        return np.array(self.images[0].GetSpacing(), float)

    def label_array(self, source: str | None = None) -> np.ndarray:
        key = source if source is not None else next(iter(self.labels))
        return sitk.GetArrayFromImage(self.labels[key])


def _same_grid(a: sitk.Image, b: sitk.Image) -> str | None:
    """None when ``a`` and ``b`` share a voxel grid, else a short description of the difference."""
    if a.GetSize() != b.GetSize():
        return f"size {a.GetSize()} vs {b.GetSize()}"
    if not np.allclose(a.GetSpacing(), b.GetSpacing(), atol=GEOMETRY_TOLERANCE_MM):
        return (
            f"spacing {tuple(round(s, 4) for s in a.GetSpacing())} vs {tuple(round(s, 4) for s in b.GetSpacing())} mm"
        )
    if not np.allclose(a.GetOrigin(), b.GetOrigin(), atol=GEOMETRY_TOLERANCE_MM * 10):
        return f"origin {tuple(round(s, 3) for s in a.GetOrigin())} vs {tuple(round(s, 3) for s in b.GetOrigin())} mm"
    if not np.allclose(a.GetDirection(), b.GetDirection(), atol=DIRECTION_TOLERANCE):
        return "direction (orientation) differs"
    return None


def check_case(case: Case) -> Case:
    """Check a case's images and labels share one 3-D grid and hold usable values."""
    if not case.images:
        raise InputError(f"Case '{case.name}' has no image.")
    if not case.labels:
        raise InputError(f"Case '{case.name}' has no label image.")
    ref = case.images[0]
    if ref.GetDimension() != 3:
        raise InputError(f"Case '{case.name}': the image is {ref.GetDimension()}-D; expected 3-D.")
    if ref.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            f"Case '{case.name}': the image has {ref.GetNumberOfComponentsPerPixel()} components per voxel; "
            "expected a scalar volume."
        )
    for index, image in enumerate(case.images[1:], start=2):
        diff = _same_grid(ref, image)
        if diff:
            raise InputError(
                f"Case '{case.name}': channel {index} is not on the grid of channel 1 ({diff}); resample it first."
            )
    for key, label in case.labels.items():
        diff = _same_grid(ref, label)
        if diff:
            raise InputError(f"Case '{case.name}': label '{key}' does not match the image geometry ({diff}).")
        array = sitk.GetArrayViewFromImage(label)
        if np.issubdtype(array.dtype, np.floating):
            if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
                raise InputError(f"Case '{case.name}': label '{key}' holds non-integer values; it is not a label map.")
    for index, image in enumerate(case.images, start=1):
        if not np.all(np.isfinite(sitk.GetArrayViewFromImage(image))):
            raise InputError(f"Case '{case.name}': channel {index} holds NaN or infinite voxels.")
    return case


def _read(path: Path, what: str, case: str) -> sitk.Image:
    if not path.is_file():
        raise InputError(f"Case '{case}': {what} file {path} not found.")
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as error:
        first = str(error).strip().splitlines()[-1] if str(error).strip() else "unreadable"
        raise InputError(f"Case '{case}': cannot read {what} {path} ({first[:120]}).") from None


def label_source_name(pattern: str) -> str:
    """A short name for a label pattern: its file name without wildcards and extensions."""
    name = Path(pattern).name
    for ext in (".nii.gz", ".seg.nrrd", ".nii", ".nrrd", ".mha", ".mhd"):
        if name.endswith(ext):
            name = name[: -len(ext)]
            break
    return name.replace("*", "").strip("_-.") or "label"


def load_case(name: str, image_paths: Sequence[PathLike], label_paths: PathLike | dict[str, PathLike]) -> Case:
    """Read one case from files and check its geometry."""
    images = [_read(Path(p), f"image channel {i}", name) for i, p in enumerate(image_paths, start=1)]
    if not isinstance(label_paths, dict):
        label_paths = {"label": label_paths}
    labels = {key: _read(Path(p), f"label '{key}'", name) for key, p in label_paths.items()}
    return check_case(Case(name=name, images=images, labels=labels, source=str(Path(image_paths[0]).parent)))


def _match_one(folder: Path, pattern: str) -> Path | None:
    hits = sorted(p for p in folder.iterdir() if p.is_file() and fnmatch.fnmatch(p.name, pattern))
    if len(hits) > 1:
        raise InputError(
            f"Pattern '{pattern}' matches several files in {folder}: {', '.join(h.name for h in hits[:4])}."
        )
    return hits[0] if hits else None


def find_case_files(folder: PathLike, channel_patterns: Sequence[str], label_patterns: Sequence[str]) -> list[dict]:
    """``[{"name", "images": [...], "labels": {source: path}}]`` for the cases in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"Case folder {folder} not found.")
    if not channel_patterns or not label_patterns:
        raise InputError("Give at least one image pattern and one label pattern.")
    sources = [label_source_name(p) for p in label_patterns]
    if len(set(sources)) != len(sources):
        raise InputError(f"Label patterns {list(label_patterns)} must have distinct names.")
    found = []
    subdirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    per_case_dirs = [d for d in subdirs if _match_one(d, channel_patterns[0]) is not None]
    if per_case_dirs:
        for d in per_case_dirs:
            images = [_match_one(d, p) for p in channel_patterns]
            labels = {s: _match_one(d, p) for s, p in zip(sources, label_patterns, strict=False)}
            missing = [p for p, f in zip(channel_patterns, images, strict=False) if f is None] + [
                p for p, f in zip(label_patterns, labels.values(), strict=False) if f is None
            ]
            if missing:
                raise InputError(f"Case folder {d} has no file matching {', '.join(missing)}.")
            found.append({"name": d.name, "images": images, "labels": labels})
    else:
        first = channel_patterns[0]
        if first.count("*") != 1:
            raise InputError(
                f"In a flat folder the first image pattern needs exactly one '*' for the case name (got '{first}')."
            )
        prefix, suffix = first.split("*")
        for path in sorted(folder.iterdir()):
            if not (path.is_file() and fnmatch.fnmatch(path.name, first)):
                continue
            stem = path.name[len(prefix) : len(path.name) - len(suffix)]
            images = [folder / p.replace("*", stem) for p in channel_patterns]
            labels = {s: folder / p.replace("*", stem) for s, p in zip(sources, label_patterns, strict=False)}
            missing = [str(p.name) for p in list(images) + list(labels.values()) if not p.is_file()]
            if missing:
                raise InputError(f"Case '{stem}' in {folder} lacks {', '.join(missing)}.")
            found.append({"name": stem, "images": images, "labels": labels})
    if not found:
        raise InputError(f"No cases found in {folder} with image pattern '{channel_patterns[0]}'.")
    return found


def cases_from_folder(folder: PathLike, channel_patterns: Sequence[str], label_patterns: Sequence[str]) -> list[Case]:
    """Read every case of a folder (see the module docstring for layouts)."""
    return [
        load_case(c["name"], c["images"], c["labels"])
        for c in find_case_files(folder, channel_patterns, label_patterns)
    ]


def cases_from_list(path: PathLike) -> list[Case]:
    """Cases from a CSV (columns ``name``, ``image`` or ``image1..``, ``label`` or ``label_<source>``) or a
    JSON list of ``{"name", "images": [...], "labels": {source: path} or "label": path}``.
    Relative paths are relative to the list file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Case list {path} not found.")
    base = path.parent
    entries = []
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise InputError(f"Case list {path} is not valid JSON ({error}).") from None
        if not isinstance(data, list):
            raise InputError(f"Case list {path} must hold a JSON list of cases.")
        for i, item in enumerate(data):
            if not isinstance(item, dict) or "images" not in item or not ("labels" in item or "label" in item):
                raise InputError(f"Case list {path}: entry {i + 1} needs 'images' and 'label' (or 'labels').")
            labels = item.get("labels") or {"label": item["label"]}
            entries.append((item.get("name", f"case{i + 1}"), item["images"], labels))
    elif path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        if not rows:
            raise InputError(f"Case list {path} has no rows.")
        columns = list(rows[0].keys())
        image_cols = [c for c in columns if c and c.lower().startswith("image")]
        label_cols = [c for c in columns if c and c.lower().startswith("label")]
        if not image_cols or not label_cols:
            raise InputError(f"Case list {path} needs 'image' and 'label' columns (has {', '.join(columns)}).")
        for i, row in enumerate(rows):
            labels = {("label" if c.lower() == "label" else c[6:] or c): row[c] for c in label_cols}
            entries.append((row.get("name") or row.get("case") or f"case{i + 1}", [row[c] for c in image_cols], labels))
    else:
        raise InputError(f"Case list {path} must be .csv or .json.")
    cases = []
    for name, images, labels in entries:
        images = [base / p for p in images]
        labels = {k: base / v for k, v in labels.items()}
        cases.append(load_case(str(name), images, labels))
    return cases


def collect_cases(
    inputs: Sequence[PathLike], channel_patterns: Sequence[str], label_patterns: Sequence[str]
) -> list[Case]:
    """Cases from any mix of case folders and list files; names must be unique."""
    cases: list[Case] = []
    for item in inputs:
        p = Path(item)
        if p.is_file() and p.suffix.lower() in (".csv", ".json"):
            cases.extend(cases_from_list(p))
        else:
            cases.extend(cases_from_folder(p, channel_patterns, label_patterns))
    names = [c.name for c in cases]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(f"Case names must be unique; repeated: {', '.join(dupes)}.")
    return cases


def case_from_nodes(volume_nodes: Sequence, segmentation_node, name: str | None = None) -> Case:
    """A case from volume node(s) (one per channel) and a segmentation node, read on the first volume's grid.

    Label values follow the segment order (1..n); the names are kept so a label mapping can refer to
    segments by name."""
    from SurgicalAICore.mrml.volumes import sitk_from_volume_node

    if not volume_nodes or any(v is None for v in volume_nodes):
        raise InputError("Pick a volume for every channel of the case.")
    if segmentation_node is None:
        raise InputError("Pick a segmentation for the case.")
    from SurgicalAICore.geometry import sitk_from_array
    from SegmentationAILib.preprocessing import resample_like
    from SurgicalAICore.mrml.segmentations import labels_from_segmentation

    array, ijk_to_ras, infos = labels_from_segmentation(segmentation_node)
    images = [sitk_from_volume_node(v) for v in volume_nodes]
    # the segmentation's own grid may be cropped or finer: read it on the first volume's grid
    label = resample_like(sitk_from_array(array.astype(np.uint16), ijk_to_ras), images[0], sitk.sitkNearestNeighbor, 0)
    names = {int(e["value"]): str(e["name"]) for e in infos}
    case = Case(
        name=name or volume_nodes[0].GetName(),
        images=images,
        labels={"segmentation": label},
        source=f"scene:{segmentation_node.GetName()}",
        segment_names={"segmentation": names},
    )
    return check_case(case)
