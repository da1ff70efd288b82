"""Depth models scored on a rendered dataset with exact depth: per-frame rows and a summary, optionally
written as ``per_frame.csv`` + ``summary.json`` (the folder appears whole or not at all)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from SurgicalAICore.atomic import atomic_dir
from SurgicalAICore.errors import InputError
from SurgicalDepthLib.depth.metrics import METRIC_NAMES, evaluate_estimator


def _summary(rows: list[dict], **header) -> dict:
    summary = {**header, "frames": len(rows)}
    for prefix in ("median", "metric"):
        summary[prefix] = {k: float(np.mean([r[f"{prefix}_{k}"] for r in rows])) for k in METRIC_NAMES}
    by_scenario = {}
    for name in sorted({r["scenario"] for r in rows}):
        sel = [r for r in rows if r["scenario"] == name]
        by_scenario[name] = {p: {k: float(np.mean([r[f"{p}_{k}"] for r in sel])) for k in METRIC_NAMES}
                             for p in ("median", "metric")}
        by_scenario[name]["frames"] = len(sel)
    summary["by_scenario"] = by_scenario
    return summary


def _write(out: Path, rows: list[dict], summary: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(out, replace=True) as tmp:
        with open(tmp / "per_frame.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
            writer.writeheader()
            writer.writerows(rows)
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


def evaluate_to_folder(model_path, dataset_path, output=None, split=None, scenario=None, cap_mm=300.0,
                       max_frames=None, device="auto", overwrite=False, progress=None) -> dict:
    """Score a depth model (``None``/``'default'``: the bundled one) on a rendered dataset.

    Args:
        output: folder for ``per_frame.csv`` and ``summary.json`` (None: nothing is written).
        split, scenario: only these frames; ``max_frames``: evenly spaced frames only.
        cap_mm: depths beyond this are not scored.

    Raises:
        InputError: an existing output without ``overwrite``, a non-positive cap, a bad dataset or model.
    """
    from SurgicalDepthLib.depth.loaders import load_depth_model
    from SurgicalDepthLib.synthetic.dataset import SyntheticDepthDataset

    if output is not None and Path(output).exists() and not overwrite:
        raise InputError(f"Output folder {output} already exists; choose another or allow overwriting.")
    if cap_mm <= 0:
        raise InputError("The depth cap must be positive.")
    estimator = load_depth_model(None if model_path in (None, "default") else model_path, device)
    data = SyntheticDepthDataset(dataset_path, split=split, scenarios=[scenario] if scenario else None)
    if max_frames is not None and len(data) > max_frames:
        keep = np.linspace(0, len(data) - 1, max_frames).astype(int)
        data.rows = [data.rows[i] for i in keep]
    rows = evaluate_estimator(estimator, data, cap_mm, progress)
    summary = _summary(rows, model=str(model_path), dataset=str(dataset_path), split=split, scenario=scenario,
                       cap_mm=cap_mm, is_metric=estimator.is_metric)
    if output is not None:
        _write(Path(output), rows, summary)
    return summary
