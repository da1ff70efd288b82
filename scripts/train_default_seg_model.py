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
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "SegmentationAI"))
sys.path.insert(0, str(ROOT))

from SegmentationAILib.preprocessing import normalize, resample_to_spacing  # noqa: E402
from SegmentationAILib.sample_reference import default_labels, sample_reference_labels  # noqa: E402
from SegmentationAILib.sample_slabs import SLAB_ORGANS, slab_dice  # noqa: E402
from SegmentationAILib.seg_model import build_network, save_segmentation_model  # noqa: E402
from SegmentationAILib.training.generalise import AIR_HU, GeneralisingSampler  # noqa: E402
from SurgicalAICore.atomic import write_atomic  # noqa: E402
from SurgicalAICore.checkpoint import rng_state, set_rng_state, step_seed  # noqa: E402
from SurgicalAICore.resources import sample_ct_path  # noqa: E402

CROP = 64  # training crops (voxels); the network is fully convolutional and infers on 96^3 windows


def base_card(mean: float, std: float, channels=(8, 16, 32, 64)) -> dict:
    return {
        "name": "abdomen-ct-unet",
        "version": "2.0.0",
        "task": "segmentation",
        "description": "Small 3-D U-Net for nine abdominal structures on CT at 3 mm, trained on the single "
        "bundled sample CT with augmentation for partial scans (slabs, cut fields of view, other slice spacing, "
        "orientation and contrast phase). A demonstration model: it has seen one patient only.",
        "modality": "CT",
        "channels": ["CT"],
        # arrays in one storage order whatever the file's: a DICOM series (LPS) and this NIfTI (RAS) look alike
        "orientation": "RAS",
        "labels": default_labels(),
        "spacing": [3.0, 3.0, 3.0],
        "patch_size": [96, 96, 96],
        "normalization": [{"type": "ct", "clip": [-1000.0, 1000.0], "mean": mean, "std": std}],
        "architecture": {
            "name": "UNet",
            "spatial_dims": 3,
            "channels": [int(c) for c in channels],
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
        "inference": {"overlap": 0.5, "blend": "gaussian", "tta": True, "tta_axes": [2], "pad": "minimum"},
        "license": "CC-BY-4.0 (weights derived from the TotalSegmentator example CT and labels)",
        "intended_use": "Demonstration and testing of the SlicerSurgicalAI pipeline; not for clinical use.",
    }


PHASE_OFFSETS_HU = {  # per label value: contrast-phase HU offset range (native .. arterial/portal)
    1: (-40.0, 40.0), 2: (-40.0, 40.0), 3: (-80.0, 80.0), 4: (-80.0, 80.0), 5: (-30.0, 30.0),
    6: (-150.0, 250.0), 7: (-60.0, 60.0), 8: (-20.0, 20.0), 9: (-40.0, 40.0),
}


def training_case(card: dict):
    """(HU array [k, j, i] on the model grid in the card's orientation, label array, grid image)."""
    ct = sitk.ReadImage(str(sample_ct_path()))
    ct = sitk.DICOMOrient(ct, card["orientation"])
    grid = resample_to_spacing(sitk.Cast(ct, sitk.sitkFloat32), card["spacing"], sitk.sitkLinear, AIR_HU)
    reference = sitk.DICOMOrient(sample_reference_labels(), card["orientation"])
    labels = sitk.GetArrayFromImage(sitk.Resample(reference, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0))
    hu = np.clip(sitk.GetArrayFromImage(grid), -1000, 1000).astype(np.float32)
    return hu, labels.astype(np.int64), grid


def _state(network, optimiser, scheduler, step: int, seconds: float, args) -> dict:
    return {"network": network.state_dict(), "optimiser": optimiser.state_dict(),
            "scheduler": scheduler.state_dict(), "step": step, "seconds": seconds, "rng": rng_state(),
            "args": {k: v for k, v in vars(args).items() if k in ("steps", "batch", "lr", "seed", "channels")}}


def train(args) -> None:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    ct = sitk.ReadImage(str(sample_ct_path()))
    clipped = np.clip(sitk.GetArrayFromImage(ct).astype(np.float32), -1000, 1000)
    body = clipped > -500
    card = base_card(round(float(clipped[body].mean()), 2), round(float(clipped[body].std()), 2), args.channels)
    hu, labels, _ = training_case(card)
    norm = card["normalization"][0]
    sampler = GeneralisingSampler([(hu, labels)], CROP, lambda a: normalize(a, norm), PHASE_OFFSETS_HU)

    from monai.losses import DiceCELoss

    network = build_network(card)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    optimiser = torch.optim.AdamW(network.parameters(), lr=args.lr, weight_decay=1e-5)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=args.lr, total_steps=args.steps, pct_start=0.05)
    checkpoint = Path(args.checkpoint)
    step, seconds = 0, 0.0
    if checkpoint.is_file():
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        network.load_state_dict(state["network"])
        optimiser.load_state_dict(state["optimiser"])
        step, seconds = int(state["step"]), float(state["seconds"])
        if int(state["args"]["steps"]) == args.steps:
            scheduler.load_state_dict(state["scheduler"])
        else:  # a longer or shorter plan: the one-cycle schedule continues from here towards the new end
            scheduler = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=args.lr, total_steps=args.steps,
                                                            pct_start=0.05, last_epoch=step - 1)
            print(f"schedule re-planned at step {step}: {state['args']['steps']} -> {args.steps} steps", flush=True)
        set_rng_state(state["rng"])
        print(f"resumed at step {step} ({seconds:.0f} s trained)", flush=True)
    network.train()
    leg_start = time.time()
    while step < args.steps and (time.time() - leg_start) < args.minutes * 60:
        rng = np.random.default_rng(step_seed(args.seed, 0, step))
        xs, ys = zip(*(sampler.sample(rng) for _ in range(args.batch)), strict=True)
        xb = torch.from_numpy(np.stack(xs))
        yb = torch.from_numpy(np.stack(ys)[:, None])
        optimiser.zero_grad()
        loss = loss_fn(network(xb), yb)
        loss.backward()
        optimiser.step()
        scheduler.step()
        step += 1
        if step % 20 == 0 or step == args.steps:
            print(f"step {step:5d}/{args.steps} loss {loss.item():.4f} {time.time() - leg_start:.0f}s", flush=True)
        if step % 100 == 0 or step == args.steps:
            save_checkpoint(checkpoint, _state(network, optimiser, scheduler, step,
                                               seconds + time.time() - leg_start, args))
    seconds += time.time() - leg_start
    save_checkpoint(checkpoint, _state(network, optimiser, scheduler, step, seconds, args))
    if step < args.steps:
        print(f"leg over at step {step}/{args.steps}; run the same command again to continue", flush=True)
        return
    network.eval()
    publish(args, card, network, step, seconds)


def save_checkpoint(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda tmp: torch.save(state, tmp))


def publish(args, card: dict, network, steps: int, seconds: float) -> None:
    card["training"] = {
        "data": "Resources/SampleData/TotalSegmentatorExample/example_ct.nii.gz with example_seg_fast_force_split.nii.gz "
        "(TotalSegmentator example, CC BY 4.0), labels merged as in SegmentationAILib/sample_reference.py",
        "cases": 1,
        "command": f"python scripts/train_default_seg_model.py --steps {args.steps} --seed {args.seed} "
        f"--batch {args.batch} --lr {args.lr} --channels {' '.join(map(str, args.channels))} "
        "-o Resources/Models/abdomen-ct-unet --overwrite   (repeat until it publishes: legs of --minutes)",
        "steps": steps,
        "batch": args.batch,
        "crop": [CROP] * 3,
        "seed": args.seed,
        "loss": "Dice + cross-entropy",
        "optimizer": f"AdamW one-cycle lr {args.lr}",
        "augmentation": "GeneralisingSampler (SegmentationAILib/training/generalise.py): class-balanced centres, "
        "slabs of 3-40 slices and cut reconstruction circles padded with air, scaling 0.75-1.3, rotation, "
        "head-foot mirror, thick-slice blur, per-structure contrast-phase offsets, HU scale/shift, noise",
        "seconds": round(seconds, 1),
        "device": "cpu",
        "threads": args.threads,
    }
    out = Path(args.output)
    tmp_out = out.parent / (out.name + ".tmp-train")
    save_segmentation_model(tmp_out, network, card, overwrite=True)
    card["metrics"] = measure(tmp_out, card)
    save_segmentation_model(out, network, card, overwrite=args.overwrite)
    import shutil

    shutil.rmtree(tmp_out, ignore_errors=True)
    write_model_card_md(out)
    print(json.dumps(card["metrics"], indent=2))
    print(f"model written to {out}")


def measure(model_folder: Path, card: dict) -> dict:
    from SegmentationAILib.segmenter import segment_image
    from SegmentationAILib.statistics import dice_scores

    ct = sitk.ReadImage(str(sample_ct_path()))
    reference = sample_reference_labels()
    result = segment_image(ct, str(model_folder), {"device": "cpu"})
    values = [e["value"] for e in card["labels"]]
    names = {e["value"]: e["name"] for e in card["labels"]}
    dice = dice_scores(sitk.GetArrayFromImage(result), sitk.GetArrayFromImage(reference), values)
    slabs = slab_dice(model_folder)
    return {
        "dice_on_training_case": {names[v]: round(d, 4) for v, d in dice.items()},
        "mean_dice_on_training_case": round(float(np.nanmean(list(dice.values()))), 4),
        "slabs_of_training_case": slabs,
        "note": "Measured on the same single CT the model was trained on (with TTA and post-processing); "
        "NOT a generalisation estimate. The slab figures are the same patient re-sliced as a short DICOM-like "
        "series (0.98 x 0.98 x 2 mm, LPS storage): they test field of view, slice spacing and orientation, "
        "not other anatomy.",
    }


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
{slab_section(metrics.get('slabs_of_training_case'))}

**Honest reading:** {metrics.get('note', '')} The model has seen one patient; on other CTs expect
it to fail often. It demonstrates the pipeline (panel, API, CLI, demo); train a real model with
`surgicalai train` on many cases for actual use.

## Licence
{card.get('license', '')}. Sample data attribution: `Resources/SampleData/TotalSegmentatorExample/ATTRIBUTION.md`.
"""
    path = folder / "MODEL_CARD.md"
    path.write_text(text)
    return path


def slab_section(slabs: dict | None) -> str:
    """The card's table of Dice on 20-slice DICOM-like re-slices of the training CT (if measured)."""
    if not slabs:
        return ""
    rows = "\n".join(f"| {where} | " + " | ".join(f"{d[n]:.3f}" if n in d else "-" for n in SLAB_ORGANS) + " |"
                     for where, d in slabs.items() if where != "mean")
    return f"""
## Measured Dice on short slabs (field of view, slice spacing, orientation)
The training CT re-sliced as a short DICOM-like series (20 slices at 0.98 x 0.98 x 2 mm, LPS storage), at four
heights through the liver: the kind of partial scan a user loads. The same patient, so this tests field of view,
slice spacing and orientation only, not other anatomy.

| slab | {' | '.join(SLAB_ORGANS)} |
|---|{'---:|' * len(SLAB_ORGANS)}
{rows}

Mean over slabs: {slabs['mean']:.3f} (the 1.0.0 model, trained on whole-body crops only: 0.000).
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default=str(ROOT / "Resources" / "Models" / "abdomen-ct-unet"))
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--channels", type=int, nargs=4, default=[8, 16, 32, 64])
    parser.add_argument("--minutes", type=float, default=1e9, help="stop this leg after so many minutes")
    parser.add_argument("--checkpoint", default=str(ROOT / "training" / "abdomen-ct-unet" / "last.pt"))
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--card-only", action="store_true", help="only regenerate MODEL_CARD.md from model.json")
    args = parser.parse_args()
    if args.card_only:
        print(write_model_card_md(Path(args.output)))
        return
    train(args)


if __name__ == "__main__":
    main()
