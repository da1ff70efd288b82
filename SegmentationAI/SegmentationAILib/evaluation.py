"""Evaluation of segmentations against reference labels, per case and per structure.

Metrics (MONAI's where they fit): Dice, IoU (Jaccard), 95th-percentile Hausdorff distance and
symmetric average surface distance in mm (physical spacing, anisotropic allowed), reference and
predicted volume in mL and their difference. A structure absent from both prediction and
reference gives NaN everywhere (left out of the means); absent from one of them gives Dice = IoU
= 0 and NaN distances (no surface to measure). Summaries are mean ± sd over the cases with a value.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Mapping, Sequence

import numpy as np
import SimpleITK as sitk

from SurgicalAICore.atomic import write_text_atomic
from SurgicalAICore.errors import InputError
from SurgicalAICore.progress import CancelToken, Progress, ProgressCallback

METRICS = ["dice", "iou", "hd95_mm", "asd_mm", "volume_ref_ml", "volume_pred_ml", "volume_diff_ml", "volume_diff_pct"]


def _crop_box(a: np.ndarray, b: np.ndarray, margin: int = 2):
    """Slices covering both masks plus a margin (surface distances do not depend on the rest)."""
    both = a | b
    idx = [np.flatnonzero(both.any(axis=tuple(x for x in range(3) if x != ax))) for ax in range(3)]
    return tuple(slice(max(int(i[0]) - margin, 0), int(i[-1]) + margin + 1) for i in idx)


def structure_metrics(pred: np.ndarray, ref: np.ndarray, spacing_ijk: Sequence[float]) -> dict[str, float]:
    """Metrics of one binary structure; arrays ``[k, j, i]``, spacing in mm along i, j, k."""
    import torch
    from monai.metrics import compute_average_surface_distance, compute_dice, compute_hausdorff_distance, compute_iou

    p, r = np.asarray(pred, bool), np.asarray(ref, bool)
    if p.shape != r.shape:
        raise InputError(f"Prediction {p.shape} and reference {r.shape} are not on the same grid.")
    voxel_ml = float(np.prod(spacing_ijk)) / 1000.0
    v_ref, v_pred = float(r.sum()) * voxel_ml, float(p.sum()) * voxel_ml
    out = {
        "volume_ref_ml": v_ref,
        "volume_pred_ml": v_pred,
        "volume_diff_ml": v_pred - v_ref,
        "volume_diff_pct": (100.0 * (v_pred - v_ref) / v_ref) if v_ref > 0 else math.nan,
    }
    if not p.any() and not r.any():
        out.update(dice=math.nan, iou=math.nan, hd95_mm=math.nan, asd_mm=math.nan)
        return out
    if not p.any() or not r.any():
        out.update(dice=0.0, iou=0.0, hd95_mm=math.nan, asd_mm=math.nan)
        return out
    box = _crop_box(p, r)
    tp = torch.from_numpy(np.ascontiguousarray(p[box]))[None, None].float()
    tr = torch.from_numpy(np.ascontiguousarray(r[box]))[None, None].float()
    spacing_kji = [float(s) for s in spacing_ijk][::-1]
    out["dice"] = float(compute_dice(tp, tr, include_background=True)[0, 0])
    out["iou"] = float(compute_iou(tp, tr, include_background=True)[0, 0])
    out["hd95_mm"] = float(
        compute_hausdorff_distance(tp, tr, include_background=True, percentile=95, spacing=spacing_kji)[0, 0]
    )
    out["asd_mm"] = float(
        compute_average_surface_distance(tp, tr, include_background=True, symmetric=True, spacing=spacing_kji)[0, 0]
    )
    return out


def evaluate_labels(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing_ijk: Sequence[float],
    names: Mapping[int, str],
    groups: Mapping[str, Sequence[str]] | None = None,
    case: str = "case",
) -> list[dict]:
    """Rows (one per structure, then per group = union of structures) for two label maps ``[k, j, i]``."""
    if pred.shape != ref.shape:
        raise InputError(f"Case '{case}': prediction {pred.shape} and reference {ref.shape} are not on the same grid.")
    rows = []
    for value, name in sorted(names.items()):
        rows.append({"case": case, "structure": name, **structure_metrics(pred == value, ref == value, spacing_ijk)})
    by_name = {n: v for v, n in names.items()}
    for group, members in (groups or {}).items():
        unknown = [m for m in members if m not in by_name]
        if unknown:
            raise InputError(
                f"Group '{group}' names unknown structure(s) {', '.join(unknown)} (known: {', '.join(by_name)})."
            )
        values = [by_name[m] for m in members]
        rows.append(
            {
                "case": case,
                "structure": group,
                **structure_metrics(np.isin(pred, values), np.isin(ref, values), spacing_ijk),
            }
        )
    return rows


@dataclass
class EvaluationResult:
    rows: list[dict]
    structures: list[str]
    info: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        """{structure: {metric: {"mean", "sd", "n"}}} over cases with a finite value."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for s in self.structures:
            out[s] = {}
            for m in METRICS:
                v = np.array([r[m] for r in self.rows if r["structure"] == s], float)
                v = v[np.isfinite(v)]
                out[s][m] = {
                    "mean": float(v.mean()) if v.size else math.nan,
                    "sd": float(v.std(ddof=1)) if v.size > 1 else (0.0 if v.size else math.nan),
                    "n": int(v.size),
                }
        return out

    def mean_dice(self, structures: Sequence[str] | None = None) -> float:
        s = self.summary()
        vals = [s[n]["dice"]["mean"] for n in (structures or self.structures) if np.isfinite(s[n]["dice"]["mean"])]
        return float(np.mean(vals)) if vals else math.nan

    def summary_text(self) -> str:
        s = self.summary()
        lines = [f"{'structure':<16} {'Dice':>13} {'IoU':>13} {'HD95 mm':>13} {'ASD mm':>13} {'vol diff %':>14}"]
        for name in self.structures:

            def f(m: str, w: int = 13) -> str:
                x = s[name][m]  # noqa: B023 (called at once, inside this iteration)
                return f"{x['mean']:.3f}±{x['sd']:.3f}".rjust(w) if np.isfinite(x["mean"]) else "n/a".rjust(w)

            lines.append(f"{name:<16} {f('dice')} {f('iou')} {f('hd95_mm')} {f('asd_mm')} {f('volume_diff_pct', 14)}")
        return "\n".join(lines)

    def csv_text(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["case", "structure", *METRICS])
        for r in self.rows:
            w.writerow([r["case"], r["structure"]] + [_fmt(r[m]) for m in METRICS])
        for stat in ("mean", "sd"):
            for name, metrics in self.summary().items():
                w.writerow([stat.upper(), name] + [_fmt(metrics[m][stat]) for m in METRICS])
        return buf.getvalue()

    def write_csv(self, path: str | Path) -> Path:
        return _atomic_text(Path(path), self.csv_text())

    def write_json(self, path: str | Path) -> Path:
        clean = lambda v: None if isinstance(v, float) and not math.isfinite(v) else v  # noqa: E731
        obj = {
            "rows": [{k: clean(v) for k, v in r.items()} for r in self.rows],
            "summary": {
                s: {m: {k: clean(v) for k, v in d.items()} for m, d in ms.items()} for s, ms in self.summary().items()
            },
            "info": self.info,
        }
        return _atomic_text(Path(path), json.dumps(obj, indent=2) + "\n")

    def to_table_node(self, scene, name: str = "Segmentation evaluation"):
        """A table node (one row per case and structure, then MEAN and SD rows), added to ``scene`` once complete."""
        import slicer
        import vtk

        table = vtk.vtkTable()
        for col in ("case", "structure"):
            arr = vtk.vtkStringArray()
            arr.SetName(col)
            table.AddColumn(arr)
        for m in METRICS:
            arr = vtk.vtkDoubleArray()
            arr.SetName(m)
            table.AddColumn(arr)
        rows = [(r["case"], r["structure"], [r[m] for m in METRICS]) for r in self.rows]
        for stat in ("mean", "sd"):
            rows += [(stat.upper(), s, [ms[m][stat] for m in METRICS]) for s, ms in self.summary().items()]
        table.SetNumberOfRows(len(rows))
        for i, (case, structure, values) in enumerate(rows):
            table.GetColumn(0).SetValue(i, case)
            table.GetColumn(1).SetValue(i, structure)
            for j, v in enumerate(values):
                table.GetColumn(2 + j).SetValue(i, float(v))
        node = slicer.vtkMRMLTableNode()
        node.SetName(name)
        node.SetAndObserveTable(table)
        scene.AddNode(node)
        return node


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "" if not math.isfinite(v) else f"{v:.6g}"
    return str(v)


def _atomic_text(path: Path, text: str) -> Path:
    parent = path.parent
    if not parent.is_dir():
        raise InputError(f"Folder {parent} does not exist; cannot write {path.name}.")
    if not os.access(parent, os.W_OK):
        raise InputError(f"Cannot write to {parent}.")
    return write_text_atomic(path, text)


def reference_for_model(case, names: Mapping[int, str], mapping=None) -> np.ndarray:
    """The case's reference as the model's label values: through ``mapping`` (classes matched to the
    model's labels by name) or, without one, the case's first label source taken value for value."""
    if mapping is None:
        ref = case.label_array()
        return np.where(np.isin(ref, list(names)), ref, 0).astype(np.uint8)
    by_name = {n: v for v, n in names.items()}
    unknown = [n for n in mapping.names if n not in by_name]
    if unknown:
        raise InputError(
            f"Class(es) {', '.join(unknown)} of the label mapping are not labels of the model ({', '.join(by_name)})."
        )
    classes = mapping.apply(case)
    lut = np.zeros(len(mapping.names) + 1, np.uint8)
    for i, n in enumerate(mapping.names, start=1):
        lut[i] = by_name[n]
    return lut[classes]


def evaluate_model(
    models,
    cases: Sequence,
    mapping=None,
    device: str = "auto",
    tta: bool | None = None,
    groups: Mapping[str, Sequence[str]] | None = None,
    progress: ProgressCallback | Progress | None = None,
    cancel: CancelToken | None = None,
    options: Mapping | None = None,
) -> EvaluationResult:
    """Segment each case with the model(s) (a list = ensemble, e.g. k-fold models) through the
    extension's own inference, and evaluate against the case's reference on the case's grid.
    ``options``: more segmentation options (e.g. ``largest_component``), over the card's."""
    from SegmentationAILib.segmenter import resolve_models, segment_image
    from SegmentationAILib.seg_model import label_names

    if not cases:
        raise InputError("No cases to evaluate.")
    prog = Progress.of(progress, cancel)
    loaded = resolve_models(models if isinstance(models, (list, tuple)) else [models], device)
    names = label_names(loaded[0].card)
    lcc = (options or {}).get("largest_component")
    if isinstance(lcc, (list, tuple)) and set(lcc) - set(names.values()):
        raise InputError(f"largest_component names {', '.join(sorted(set(lcc) - set(names.values())))}, "
                         f"not a label of the model ({', '.join(names.values())}).")
    rows: list[dict] = []
    for n, case in enumerate(cases):
        sub = prog.sub(n / len(cases), (n + 1) / len(cases))
        ref = reference_for_model(case, names, mapping)
        pred_image = segment_image(case.images, loaded, {**(options or {}), "device": device, "tta": tta},
                                   progress=sub.sub(0, 0.8))
        pred = sitk.GetArrayFromImage(pred_image)
        sub.step(0.85, f"measuring {case.name}")
        rows.extend(evaluate_labels(pred, ref, case.images[0].GetSpacing(), names, groups, case.name))
    prog.step(1.0, "evaluation done")
    structures = [names[v] for v in sorted(names)] + list(groups or {})
    info = {"models": [str(m.path) for m in loaded], "cases": [c.name for c in cases], "tta": tta}
    return EvaluationResult(rows, structures, info)


def evaluate_label_images(
    pred: sitk.Image,
    ref: sitk.Image,
    names: Mapping[int, str],
    case: str = "case",
    groups: Mapping[str, Sequence[str]] | None = None,
) -> list[dict]:
    """Rows for two label images; the prediction is resampled onto the reference grid if needed."""
    from SegmentationAILib.preprocessing import resample_like

    pred = resample_like(pred, ref, sitk.sitkNearestNeighbor, 0)
    return evaluate_labels(
        sitk.GetArrayFromImage(pred), sitk.GetArrayFromImage(ref), ref.GetSpacing(), names, groups, case
    )


def evaluate_segmentation_nodes(
    scene, predicted_node, reference_node, add_table: bool = True, name: str | None = None
) -> EvaluationResult:
    """Compare two segmentation nodes segment by segment (matched by name), e.g. a model's output and a
    manual segmentation; the result table is added to ``scene``."""
    from SurgicalAICore.geometry import sitk_from_array
    from SurgicalAICore.mrml.segmentations import labels_from_segmentation

    if predicted_node is None or reference_node is None:
        raise InputError("Pick both a predicted and a reference segmentation.")
    ref_arr, ref_m, ref_info = labels_from_segmentation(reference_node)
    pred_arr, pred_m, pred_info = labels_from_segmentation(predicted_node)
    pred_by_name = {e["name"]: e["value"] for e in pred_info}
    common = [e for e in ref_info if e["name"] in pred_by_name]
    if not common:
        raise InputError(
            f"Segmentations '{predicted_node.GetName()}' and '{reference_node.GetName()}' share no segment name."
        )
    names = {i: e["name"] for i, e in enumerate(common, start=1)}
    ref_lut = np.zeros(int(ref_arr.max(initial=0)) + 1, np.uint8)
    pred_lut = np.zeros(int(pred_arr.max(initial=0)) + 1, np.uint8)
    for i, e in enumerate(common, start=1):
        ref_lut[e["value"]] = i
        pred_lut[pred_by_name[e["name"]]] = i
    ref_img = sitk_from_array(ref_lut[ref_arr], ref_m)
    pred_img = sitk_from_array(pred_lut[pred_arr], pred_m)
    rows = evaluate_label_images(pred_img, ref_img, names, case=reference_node.GetName())
    result = EvaluationResult(
        rows, list(names.values()), {"predicted": predicted_node.GetName(), "reference": reference_node.GetName()}
    )
    if add_table:
        result.table_node = result.to_table_node(scene, name or f"Evaluation {predicted_node.GetName()}")
    return result
