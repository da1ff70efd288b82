"""Segmenting many cases: a folder or a list of images / DICOM series folders, one result per case,
a summary CSV, and a bad case reported without stopping the others.

Each case is written atomically, so a failure leaves no partial file; the summary lists every case
with its status, its one-line problem if any, and the volume (mL) of each structure. ``jobs > 1``
runs cases in separate processes (each loads the model once).
"""
from __future__ import annotations

import csv
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import SimpleITK as sitk

from SurgicalAICore.errors import InputError, SurgicalAIError
from SurgicalAICore.image_io import IMAGE_SUFFIXES, dicom_series_ids, has_suffix
from SurgicalAICore.atomic import atomic_file

RESULT_FORMATS = (".seg.nrrd", ".nii.gz", ".nrrd", ".mha", ".dcm")
SUMMARY_NAME = "summary.csv"


@dataclass
class CaseResult:
    case: str
    input: str
    output: str = ""
    error: str = ""
    volumes_ml: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.error


def write_result(labels_image: sitk.Image, labels: Sequence[dict], output: Path, source: Path | None = None,
                 model_name: str = "SlicerSurgicalAI") -> list[dict]:
    """Write a label image as ``.seg.nrrd`` (names, colours, terminology), DICOM SEG (``.dcm``, for a
    DICOM series ``source``) or a label file, plus its statistics CSV beside it; returns the statistics rows."""
    from SegmentationAILib.statistics import label_statistics, write_statistics_csv
    from SurgicalAICore.atomic import atomic_files
    from SurgicalAICore.errors import SurgicalAIError

    name = output.name.lower()
    if name.endswith(".dcm") and (source is None or not Path(source).is_dir()):
        raise InputError(f"{output.name}: a DICOM SEG is written only for a DICOM series input.")
    suffix = next((s for s in (".seg.nrrd", *RESULT_FORMATS, ".nii") if name.endswith(s)), output.suffix)
    rows = label_statistics(labels_image, {int(e["value"]): e["name"] for e in labels})
    stats_path = statistics_path_for(output)
    # the result and its statistics appear together or not at all; an error names the real output
    with atomic_files([output, stats_path], [suffix, ".csv"]) as (tmp_out, tmp_csv):
        try:
            _write_labels(labels_image, labels, tmp_out, name, source, model_name, output.name)
        except (SurgicalAIError, OSError) as error:
            raise InputError(f"Writing the segmentation to {output} failed; nothing was written "
                             f"({type(error).__name__}).") from None
        try:
            write_statistics_csv(rows, tmp_csv)
        except (SurgicalAIError, OSError) as error:
            raise InputError(f"Writing the statistics to {stats_path} failed; nothing was written "
                             f"({type(error).__name__}).") from None
    return rows


def _write_labels(labels_image, labels, path: Path, name: str, source, model_name: str, display: str) -> None:
    if name.endswith(".dcm"):
        from SegmentationAILib.dicom_seg import write_dicom_seg

        write_dicom_seg(labels_image, labels, source, path, model_name)
    elif name.endswith(".seg.nrrd"):
        from SurgicalAICore.geometry import array_from_sitk
        from SurgicalAICore.mrml.segmentations import export_seg_nrrd, new_segmentation_node

        array, ijk_to_ras = array_from_sitk(labels_image)
        node = new_segmentation_node(array, ijk_to_ras, labels, name=display[:-9], closed_surface=False)
        export_seg_nrrd(node, path)
    else:
        from SurgicalAICore.image_io import write_image

        write_image(labels_image, path)


def statistics_path_for(output: Path) -> Path:
    name = output.name
    for suffix in (*RESULT_FORMATS, ".nii"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return output.with_name(f"{name}_statistics.csv")


def _case_name(path: Path) -> str:
    name = path.name
    for suffix in sorted(IMAGE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def list_cases(inputs: Sequence[str | Path]) -> list[tuple[str, Path]]:
    """(case name, path) for every image file or DICOM series folder given or inside a given folder."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir() and not dicom_series_ids(path):
            entries = sorted(p for p in path.iterdir() if not p.name.startswith("."))
            found.extend(p for p in entries if p.is_dir() or has_suffix(p, IMAGE_SUFFIXES))
        else:
            found.append(path)  # a file, a DICOM series folder, or a missing path (reported per case)
    if not found:
        raise InputError(f"No image files or DICOM series folders found in {', '.join(map(str, inputs))}.")
    names: dict[str, int] = {}
    cases = []
    for path in found:
        name = _case_name(path)
        names[name] = names.get(name, 0) + 1
        cases.append((name if names[name] == 1 else f"{name}_{names[name]}", path))
    return cases


_WORKER: dict[str, Any] = {}


def _segment_case(case: str, path: Path, output: Path, models: Any, options: Any) -> CaseResult:
    from SurgicalAICore.image_io import read_image
    from SegmentationAILib.segmenter import resolve_models, segment_image

    result = CaseResult(case, str(path))
    try:
        loaded = resolve_models(models, getattr(options, "device", "auto"))
        labels_image = segment_image(read_image(path), loaded, options)
        rows = write_result(labels_image, loaded[0].labels, output, source=path, model_name=loaded[0].name)
        result.output = str(output)
        result.volumes_ml = {r["name"]: float(r["volume_ml"]) for r in rows}
    except (SurgicalAIError, OSError, RuntimeError) as error:
        result.error = str(error).splitlines()[0] if str(error) else type(error).__name__
    return result


def _worker_init(models: Any, device: str, threads: int) -> None:
    import torch

    from SegmentationAILib.segmenter import resolve_models

    torch.set_num_threads(threads)
    _WORKER["models"] = resolve_models(models, device)


def _worker_case(case: str, path: Path, output: Path, options: Any) -> CaseResult:
    return _segment_case(case, path, output, _WORKER["models"], options)


def write_summary(results: Sequence[CaseResult], path: Path) -> Path:
    structures = sorted({name for r in results for name in r.volumes_ml}, key=lambda n: min(
        list(r.volumes_ml).index(n) for r in results if n in r.volumes_ml))
    with atomic_file(path, ".csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["case", "status", "input", "output", "problem", *[f"{s}_ml" for s in structures]])
        for r in results:
            writer.writerow([r.case, "ok" if r.ok else "failed", r.input, r.output, r.error,
                             *[f"{r.volumes_ml[s]:.3f}" if s in r.volumes_ml else "" for s in structures]])
    return path


def segment_cases(inputs: Sequence[str | Path], output_dir: str | Path, models: Any = None, options: Any = None,
                  suffix: str = ".seg.nrrd", jobs: int = 1,
                  report: Callable[[CaseResult], None] | None = None) -> list[CaseResult]:
    """Segment every case; results in ``output_dir/<case><suffix>`` and ``output_dir/summary.csv``.

    The model is loaded (and checked) once before any case runs, so a bad model stops everything
    with one error; a bad case is recorded in the summary and the others go on."""
    from SegmentationAILib.segmenter import SegmentationOptions, resolve_models

    if suffix not in RESULT_FORMATS:
        raise InputError(f"Result format {suffix} must be one of {', '.join(RESULT_FORMATS)}.")
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"Output {out} is a file; a batch writes into a folder.")
    cases = list_cases(inputs)
    opts = SegmentationOptions.of(options)
    loaded = resolve_models(models, opts.device)
    out.mkdir(parents=True, exist_ok=True)
    jobs = max(1, min(int(jobs), len(cases)))
    results: list[CaseResult] = []
    if jobs == 1:
        for case, path in cases:
            results.append(_segment_case(case, path, out / f"{case}{suffix}", loaded, opts))
            if report:
                report(results[-1])
    else:
        paths = [m.path for m in loaded]
        threads = max(1, (os.cpu_count() or 1) // jobs)
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_worker_init,
                                 initargs=(paths, opts.device, threads)) as pool:
            futures = [pool.submit(_worker_case, case, path, out / f"{case}{suffix}", opts) for case, path in cases]
            for future in futures:
                results.append(future.result())
                if report:
                    report(results[-1])
    write_summary(results, out / SUMMARY_NAME)
    return results


def print_result(result: CaseResult) -> None:
    if result.ok:
        found = ", ".join(f"{n} {v:.1f} mL" for n, v in result.volumes_ml.items() if v > 0) or "no structure found"
        print(f"{result.case}: {found}")
    else:
        print(f"{result.case}: FAILED: {result.error}", file=sys.stderr)
