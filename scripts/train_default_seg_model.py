#!/usr/bin/env python
"""Train the bundled default segmentation model ``Resources/Models/abdomen-ct-unet``.

Reproducible (seeded, CPU, 1 thread: on a shared 2-core machine one thread trains faster)::

    python scripts/train_default_seg_model.py --steps 400 --seed 0 -o Resources/Models/abdomen-ct-unet --overwrite

It trains a small MONAI UNet on the ONE bundled sample CT (TotalSegmentator example, 3 mm) with
its reference labels merged into nine abdominal structures, then measures Dice on that same
case. That Dice says the model reproduces its training case; it is not an estimate of accuracy
on other patients.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "SegmentationAI"))

from SegmentationAILib.preprocessing import prepare_input  # noqa: E402
from SurgicalAICore.resources import sample_ct_path  # noqa: E402
from SegmentationAILib.sample_reference import default_labels, sample_reference_labels  # noqa: E402
from SegmentationAILib.seg_model import build_network, save_segmentation_model  # noqa: E402

CROP = 64  # training crops (voxels); the network is fully convolutional and infers on 96^3 windows


def base_card(mean: float, std: float) -> dict:
    return {
        "name": "abdomen-ct-unet",
        "version": "1.0.0",
        "task": "segmentation",
        "description": "Small 3-D U-Net for nine abdominal structures on CT at 3 mm, trained on the single "
        "bundled sample CT. A demonstration model: it has seen one patient only.",
        "modality": "CT",
        "channels": ["CT"],
        "labels": default_labels(),
        "spacing": [3.0, 3.0, 3.0],
        "patch_size": [96, 96, 96],
        "normalization": [{"type": "ct", "clip": [-1000.0, 1000.0], "mean": mean, "std": std}],
        "architecture": {
            "name": "UNet",
            "spatial_dims": 3,
            "channels": [8, 16, 32, 64],
            "strides": [2, 2, 2],
            "num_res_units": 1,
            "norm": "instance",
            "dropout": 0.0,
        },
        "preprocessing": {"clahe": False, "denoise": False},
        # not the pancreas: at 3 mm it is often predicted in pieces, and keeping the largest one
        # cost 0.25 Dice on the sample CT (benchmarks/bench_segmentation.py showed it against the peer)
        "postprocessing": {
            "largest_component": ["liver", "spleen", "kidney_left", "kidney_right", "stomach", "aorta", "gallbladder"],
            "fill_holes": True,
        },
        # mirrored along k (head-foot) only: left/right structures must not swap, and training used k flips
        "inference": {"overlap": 0.5, "blend": "gaussian", "tta": True, "tta_axes": [2]},
        "license": "CC-BY-4.0 (weights derived from the TotalSegmentator example CT and labels)",
        "intended_use": "Demonstration and testing of the SlicerSurgicalAI pipeline; not for clinical use.",
    }


def random_crop(image: np.ndarray, labels: np.ndarray, rng: np.random.Generator, classes: int):
    """A CROP^3 crop centred on a voxel of a randomly chosen class (class-balanced), padded if needed."""
    value = int(rng.integers(0, classes))
    where = np.argwhere(labels == value) if value else None
    if where is not None and len(where):
        centre = where[rng.integers(len(where))]
    else:
        centre = np.array([rng.integers(s) for s in labels.shape])
    centre = centre + rng.integers(-CROP // 4, CROP // 4 + 1, size=3)
    start = [int(np.clip(c - CROP // 2, 0, max(s - CROP, 0))) for c, s in zip(centre, labels.shape, strict=False)]
    sl = tuple(slice(s, s + CROP) for s in start)
    x, y = image[(slice(None), *sl)], labels[sl]
    pad = [(0, CROP - n) for n in y.shape]
    x = np.pad(x, [(0, 0), *pad], constant_values=float(image.min()))
    y = np.pad(y, pad)
    return x, y


def train(args) -> None:
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    random.seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    rng = np.random.default_rng(args.seed)

    ct = sitk.ReadImage(str(sample_ct_path()))
    reference = sample_reference_labels()
    clipped = np.clip(sitk.GetArrayFromImage(ct).astype(np.float32), -1000, 1000)
    body = clipped > -500
    card = base_card(round(float(clipped[body].mean()), 2), round(float(clipped[body].std()), 2))
    image, grid = prepare_input([ct], card)
    labels = sitk.GetArrayFromImage(sitk.Resample(reference, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0))
    classes = len(card["labels"]) + 1

    from monai.losses import DiceCELoss

    network = build_network(card)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    optimiser = torch.optim.AdamW(network.parameters(), lr=args.lr, weight_decay=1e-5)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=args.lr, total_steps=args.steps, pct_start=0.1)
    network.train()
    start = time.time()
    for step in range(args.steps):
        xs, ys = [], []
        for _ in range(args.batch):
            x, y = random_crop(image, labels, rng, classes)
            if rng.random() < 0.5:  # head-foot mirror, matching the card's tta_axes [2] (array axis 0)
                x, y = x[:, ::-1], y[::-1]
            x = x * float(rng.uniform(0.9, 1.1)) + float(rng.uniform(-0.1, 0.1))
            xs.append(np.ascontiguousarray(x))
            ys.append(np.ascontiguousarray(y)[None])
        xb = torch.from_numpy(np.stack(xs))
        yb = torch.from_numpy(np.stack(ys).astype(np.int64))
        optimiser.zero_grad()
        loss = loss_fn(network(xb), yb)
        loss.backward()
        optimiser.step()
        scheduler.step()
        if step % 20 == 0 or step == args.steps - 1:
            print(f"step {step:4d}/{args.steps} loss {loss.item():.4f} {time.time() - start:.0f}s", flush=True)
    train_seconds = time.time() - start
    network.eval()

    card["training"] = {
        "data": "Resources/SampleData/TotalSegmentatorExample/example_ct.nii.gz with example_seg_fast_force_split.nii.gz "
        "(TotalSegmentator example, CC BY 4.0), labels merged as in SegmentationAILib/sample_reference.py",
        "cases": 1,
        "command": f"python scripts/train_default_seg_model.py --steps {args.steps} --seed {args.seed} "
        f"--batch {args.batch} --lr {args.lr} -o Resources/Models/abdomen-ct-unet --overwrite",
        "steps": args.steps,
        "batch": args.batch,
        "crop": [CROP] * 3,
        "seed": args.seed,
        "loss": "Dice + cross-entropy",
        "optimizer": f"AdamW one-cycle lr {args.lr}",
        "augmentation": "class-balanced crops, head-foot mirror, intensity scale/shift",
        "seconds": round(train_seconds, 1),
        "device": "cpu",
        "threads": args.threads,
    }
    out = Path(args.output)
    tmp_out = out.parent / (out.name + ".tmp-train")
    save_segmentation_model(tmp_out, network, card, overwrite=True)

    from SegmentationAILib.segmenter import segment_image
    from SegmentationAILib.statistics import dice_scores

    result = segment_image(ct, str(tmp_out), {"device": "cpu"})
    dice = dice_scores(
        sitk.GetArrayFromImage(result), sitk.GetArrayFromImage(reference), [e["value"] for e in card["labels"]]
    )
    names = {e["value"]: e["name"] for e in card["labels"]}
    card["metrics"] = {
        "dice_on_training_case": {names[v]: round(d, 4) for v, d in dice.items()},
        "mean_dice_on_training_case": round(float(np.nanmean(list(dice.values()))), 4),
        "note": "Measured on the same single CT the model was trained on (with TTA and post-processing); "
        "NOT a generalisation estimate.",
    }
    save_segmentation_model(out, network, card, overwrite=args.overwrite)
    import shutil

    shutil.rmtree(tmp_out, ignore_errors=True)
    write_model_card_md(out)
    print(json.dumps(card["metrics"], indent=2))
    print(f"model written to {out}")


def write_model_card_md(folder: Path) -> Path:
    """The human-readable MODEL_CARD.md, generated from model.json so the two never disagree."""
    folder = Path(folder)
    card = json.loads((folder / "model.json").read_text())
    training, metrics = card.get("training", {}), card.get("metrics", {})
    dice = metrics.get("dice_on_training_case", {})
    rows = "\n".join(f"| {name} | {value:.3f} |" for name, value in dice.items())
    arch = card["architecture"]
    text = f"""# Model card: {card['name']} {card['version']}

{card['description']}

**Intended use:** {card.get('intended_use', '')}

## What it segments
CT at {card['spacing'][0]:g} mm: {', '.join(e['name'] for e in card['labels'])} (label values 1..{len(card['labels'])}
in this order; 0 is background). All vertebrae (C1-S1) are merged into one segment.

## Training data: one CT
- {training.get('data', '')}
- **One case only.** The reference labels are outputs of the TotalSegmentator model (not manual contours).

## How it was trained (reproducible, CPU)
```
{training.get('command', '')}
```
{training.get('steps')} steps of batch {training.get('batch')} crops {training.get('crop')} voxels, {training.get('loss')},
{training.get('optimizer')}, augmentation: {training.get('augmentation')}; seed {training.get('seed')};
{training.get('seconds')} s on {training.get('threads')} CPU thread(s) of a shared 2-core machine.

## Network
MONAI `UNet` ({arch['spatial_dims']}-D), channels {arch['channels']}, strides {arch['strides']},
{arch.get('num_res_units', 0)} residual unit(s), {arch.get('norm')} norm; input normalised with clip
{card['normalization'][0]['clip']} HU, mean {card['normalization'][0]['mean']}, std {card['normalization'][0]['std']}.
Inference: sliding window {card['patch_size']} with {card.get('inference', {}).get('blend', 'gaussian')} blending,
overlap {card.get('inference', {}).get('overlap', 0.5)}, mirroring TTA along axes {card.get('inference', {}).get('tta_axes')}
(head-foot only: a left-right mirror would swap left and right organs); post-processing: largest
connected component for {card.get('postprocessing', {}).get('largest_component')}, hole filling.

## Measured Dice (on the training case itself)
| structure | Dice |
|---|---:|
{rows}

Mean: {metrics.get('mean_dice_on_training_case', float('nan')):.3f}.

**Honest reading:** {metrics.get('note', '')} The model has seen one patient; on other CTs expect
it to fail often. It demonstrates the pipeline (panel, API, CLI, demo); train a real model with
`surgicalai train` on many cases for actual use.

## Licence
{card.get('license', '')}. Sample data attribution: `Resources/SampleData/TotalSegmentatorExample/ATTRIBUTION.md`.
"""
    path = folder / "MODEL_CARD.md"
    path.write_text(text)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default=str(ROOT / "Resources" / "Models" / "abdomen-ct-unet"))
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--card-only", action="store_true", help="only regenerate MODEL_CARD.md from model.json")
    args = parser.parse_args()
    if args.card_only:
        print(write_model_card_md(Path(args.output)))
        return
    train(args)


if __name__ == "__main__":
    main()
