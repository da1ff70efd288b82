#!/usr/bin/env python
"""Write the evaluation results and the reproduction command into a trained depth model's card.

    python scripts/finalize_depth_model.py MODEL_DIR --val EVAL_VAL_DIR --heldout EVAL_HELDOUT_DIR

Reads the ``summary.json`` files written by ``surgicalai eval-depth``, adds them to ``model.json`` (the
weights and their hash are untouched), and writes ``MODEL_CARD.md`` from ``model.json`` so the two never
disagree. The folder is checked by the extension's own loader afterwards.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "SegmentationAI"), str(ROOT / "SurgicalDepth")]

COMMAND = "bash scripts/train_default_depth_model.sh   # defaults: FRAMES=2400 STEPS=9000 MINUTES=110"
SCENARIOS = (
    "laparoscopy: organ surfaces of the bundled TotalSegmentator example CT (CC BY 4.0); "
    "sinus: nasal cavity and sinuses of the head phantom CT (FREDtools test data; renders only, the CT "
    "is not shipped); bronchoscopy: airway lumen of the LIDC-IDRI-0314 chest CT (TCIA, CC BY 3.0); "
    "shapes: procedural bumpy ellipsoids"
)
HELD_OUT = (
    "air cavities of an OpenKBP head-and-neck CT (validation_pt_201), rendered for evaluation only, never trained on"
)


DESCRIPTION = (
    "Compact encoder-decoder predicting metric z-depth (mm) from one endoscope frame, trained "
    "on synthetic endoscopy rendered from CT (laparoscopy, sinus, bronchoscopy, shapes)."
)
READING = (
    "trained for {minutes} minutes on one CPU thread, on renders only. Its relative depth (median-scaled) is "
    "usable for point clouds and scale-free registration; its metric scale is not accurate enough to trust "
    "without alignment (register with the scale left free, or align to a reference depth). It is well short of "
    "the targets in `docs/BENCHMARKS.md` (median-scaled AbsRel <= 0.05, metric <= 0.08); more training (a GPU) "
    "is the known next step. Not for clinical use."
)


def _summary(folder: Path) -> dict:
    s = json.loads((folder / "summary.json").read_text())
    keep = ("abs_rel", "sq_rel", "rmse_mm", "rmse_log", "delta1", "delta2", "delta3")
    out = {"frames": s["frames"], "cap_mm": s["cap_mm"]}
    for proto in ("median", "metric"):
        out[f"{proto}_scaled" if proto == "median" else "metric"] = {k: round(s[proto][k], 4) for k in keep}
    out["by_scenario"] = {
        name: {
            "frames": v["frames"],
            "median_abs_rel": round(v["median"]["abs_rel"], 4),
            "median_delta1": round(v["median"]["delta1"], 4),
            "metric_abs_rel": round(v["metric"]["abs_rel"], 4),
        }
        for name, v in s.get("by_scenario", {}).items()
    }
    return out


def _sparse_summary(path: Path) -> dict:
    """The headline of an ``eval-depth-sparse`` summary.json (model and its baselines)."""
    s = json.loads(path.read_text())
    keys = ("median_abs_rel", "median_delta1", "median_rmse_log", "lsq_abs_rel", "lsq_delta1", "spearman")
    return {
        "frames": s["frames"],
        "references": s["references"],
        "every": s["every"],
        "methods": {n: {k: v[k] for k in ("frames", *keys)} for n, v in s["methods"].items()},
    }


def _sparse_markdown(e: dict | None) -> str:
    if not e:
        return ""
    rows = "\n".join(
        f"| {n} | {v['median_abs_rel']:.3f} | {v['median_delta1']:.3f} | {v['lsq_abs_rel']:.3f} | {v['spearman']:.3f} |"
        for n, v in e["methods"].items()
    )
    return f"""
Real video, scale-free (`surgicalai eval-depth-sparse`): frames `{e['frames']}` (every {e['every']}th) against the
SfM sparse depth `{e['references']}` ({e['methods']['model']['frames']} frames; development data, never trained on):

| method | AbsRel, median-scaled | d<1.25, median-scaled | AbsRel, scale-and-shift | Spearman |
|---|---|---|---|---|
{rows}
"""


def card_markdown(card: dict) -> str:
    t, m, arch = card.get("training", {}), card.get("metrics", {}), card["architecture"]
    rows = []
    for key, title in (
        ("validation_camera_paths", "held-out camera paths (every 5th path of each scenario)"),
        ("held_out_scenario", "held-out scenario: " + HELD_OUT),
    ):
        if key not in m:
            continue
        e = m[key]
        rows.append(
            f"| {title} | all ({e['frames']}) | {e['median_scaled']['abs_rel']:.3f} | "
            f"{e['median_scaled']['delta1']:.3f} | {e['metric']['abs_rel']:.3f} | {e['metric']['rmse_mm']:.2f} |"
        )
        for name, v in e["by_scenario"].items() if len(e["by_scenario"]) > 1 else ():
            rows.append(
                f"| | {name} ({v['frames']}) | {v['median_abs_rel']:.3f} | {v['median_delta1']:.3f} | "
                f"{v['metric_abs_rel']:.3f} | |"
            )
    real = m.get("real_frame_check", "")
    sparse = _sparse_markdown(m.get("real_video_sparse"))
    hp = arch["hyper_parameters"]
    return f"""# Model card: {card['name']} {card['version']}

{card['description']}

**Intended use:** {card.get('intended_use', '')}

## Input and output
One RGB frame, resized to {card['input_size'][0]}x{card['input_size'][1]} (the camera in `model.json`,
horizontal field of view about 80 degrees; other cameras: intrinsics are rescaled with the frame, and depth is
most reliable for similar fields of view). Output: z-depth in mm along the camera axis (metric,
{card['depth_range_mm'][0]:g}-{card['depth_range_mm'][1]:g} mm), at the frame's resolution.

## Network
`CompactDepthNet`: stride-2 stem and four stride-2 stages of residual blocks (widths {hp['channels']}, blocks
{hp['blocks']}), a U-Net-like decoder with skip connections predicting log-depth at 1/{hp['out_stride']} resolution,
{hp.get('norm', 'batch')} normalisation; {arch['parameters'] / 1e6:.2f} M parameters, about 0.5 G multiply-accumulates per
256x320 frame. Exportable to TorchScript.

## Training data (synthetic, rendered from CT by `surgicalai render`)
{t.get('train_frames')} training frames of 256x320 from these scenarios: {t.get('data', SCENARIOS)}. Appearance is randomised per
camera path (tissue colours, vessels, specular highlights, light fall-off, vignetting, field stop, noise,
blur); training adds colour jitter, blur, specular blobs, blood tint, noise and field-stop masks
(augmentation strength {t.get('augment_strength', '')}). Split by camera path, never by neighbouring frames.

## How it was trained (reproducible, CPU)
```
{t.get('command', COMMAND)}
```
{t.get('steps')} steps of batch {t.get('batch_size')} at {t.get('crop')} (whole frames), AdamW lr {t.get('lr')} with cosine
decay, loss: scale-invariant log (lambda {t.get('silog_lambda')}) + {t.get('gradient_weight')} x multi-scale gradient matching;
{t.get('minutes')} minutes on one CPU thread of a shared 2-core machine.

## Measured (synthetic frames never trained on; `surgicalai eval-depth`)
| set | scenario (frames) | AbsRel, median-scaled | d<1.25, median-scaled | AbsRel, metric | RMSE mm, metric |
|---|---|---|---|---|---|
{chr(10).join(rows)}

Real video: {real or 'see Testing/test_depth_real_frame.py (C3VD colon phantom frame).'}
{sparse}
**Honest reading:** {card.get('limitations') or READING.format(minutes=t.get('minutes'))}

## Licence
{card.get('license', '')}; the training renders derive from the CTs named above (attribution in
`Resources/SampleData/` and `../shared/data/README.md`).
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--val", help="eval-depth folder of the held-out paths (default: keep the card's metrics)")
    p.add_argument("--heldout")
    p.add_argument("--real-frame", default="", help="one line on the real-frame check")
    p.add_argument("--augment-strength", type=float, help="default: the card's, else 0.6")
    p.add_argument("--real-sparse", help="eval-depth-sparse output folder (real video against SfM points)")
    p.add_argument("--data", help="one line naming the training renders and their CTs (default: the card's, "
                   "else the default model's)")
    p.add_argument("--command", help="the command that reproduces the model (default: the card's, else the "
                   "default model's)")
    p.add_argument("--name", help="the model's name in its card (default: the card's)")
    p.add_argument("--version", help="the model's version (default: keep the card's)")
    p.add_argument("--description", help="the card's description (default: the card's, else the default model's)")
    p.add_argument("--limitations", help="the card's honest reading (default: the synthetic-only model's)")
    args = p.parse_args()
    folder = Path(args.model)
    card = json.loads((folder / "model.json").read_text())
    card["name"] = args.name or card.get("name", "endoscopy-depth")
    card["description"] = args.description or card.get("description") or DESCRIPTION
    if args.version:
        card["version"] = args.version
    if args.limitations:
        card["limitations"] = args.limitations
    card["intended_use"] = "Research on surgical video depth, point clouds and registration; not for clinical use."
    training = card.setdefault("training", {})
    training.update(
        {
            "command": args.command or training.get("command", COMMAND),
            "data": args.data or training.get("data", SCENARIOS),
            "augment_strength": args.augment_strength or training.get("augment_strength", 0.6),
            "held_out_scenario_for_evaluation": HELD_OUT,
        }
    )
    metrics = dict(card.get("metrics", {}))
    if args.val:
        metrics["validation_camera_paths"] = _summary(Path(args.val))
    if args.real_sparse:
        metrics["real_video_sparse"] = _sparse_summary(Path(args.real_sparse) / "summary.json")
    if args.heldout:
        metrics["held_out_scenario"] = _summary(Path(args.heldout))
    if args.real_frame:
        metrics["real_frame_check"] = args.real_frame
    card["metrics"] = metrics
    (folder / "model.json").write_text(json.dumps(card, indent=2) + "\n")
    (folder / "MODEL_CARD.md").write_text(card_markdown(card))
    from SurgicalDepthLib.depth.loaders import load_depth_model

    load_depth_model(folder, "cpu")  # schema, hash and weights still check out
    print(f"finalised {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
