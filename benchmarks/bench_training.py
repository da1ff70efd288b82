"""Training benchmark on the multi-subject development sets (research-only data: outputs go to /tmp).

    python benchmarks/bench_training.py openkbp [--out /tmp/bench_training] [--minutes 30]
    python benchmarks/bench_training.py brats   [--out /tmp/bench_training] [--minutes 20]
    python benchmarks/bench_training.py openkbp --stage eval     # evaluate an already trained model

- openkbp: ``../shared/data/ct/openkbp_hn`` train/ (30) -> validation/ (4), 7 organs at risk.
- brats:   ``../shared/data/mri/brats2015`` FLAIR + T1c, train/ (2) -> validation/ (2), classes
  brain (brainmask) and whole tumour (OTMultiClass 1-4 merged); the brain-mask Dice is measured on
  the union of both predicted classes.

Training stops after ``--minutes`` of wall time is used up by whole epochs (the step budget is
estimated from the first epoch). Evaluation runs the extension's own inference (``segment_image``)
on the original grids and writes ``evaluation.csv/json`` beside the model.
"""

from __future__ import annotations

import itertools
import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for sub in ("SegmentationAI", ""):
    sys.path.insert(0, str(ROOT / sub))

SHARED = ROOT.parent / "shared" / "data"

DATASETS = {
    "openkbp": {
        "train": SHARED / "ct/openkbp_hn/train",
        "val": SHARED / "ct/openkbp_hn/validation",
        "channels": ["*_ct.nii.gz"],
        "labels": ["*_oars.nii.gz"],
        "classes": [
            "Brainstem=1",
            "SpinalCord=2",
            "RightParotid=3",
            "LeftParotid=4",
            "Esophagus=5",
            "Larynx=6",
            "Mandible=7",
        ],
        "modality": "CT",
        "spacing": [4.5, 4.5, 3.0],
        "patch": [64, 64, 48],
        "flip_axes": [1, 2],
        "class_balanced": True,
        "lr": 3e-3,
        "groups": {},
    },
    "brats": {
        "train": SHARED / "mri/brats2015/train",
        "val": SHARED / "mri/brats2015/validation",
        "channels": ["Flair*.nii.gz", "T1c*.nii.gz"],
        "labels": ["OTMultiClass.nii.gz", "brainmask.nii.gz"],
        "classes": ["brain=brainmask:1", "whole_tumour=OTMultiClass:1-4"],
        "modality": "MR",
        "spacing": [2.0, 2.0, 2.0],
        "patch": [64, 64, 64],
        "flip_axes": [0, 1, 2],
        "class_balanced": False,
        "lr": 2e-3,
        "groups": {"brain_mask": ["brain", "whole_tumour"]},
    },
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", choices=sorted(DATASETS))
    p.add_argument("--out", default="/tmp/bench_training")
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--steps-per-epoch", type=int, default=40)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--stage", choices=["all", "train", "eval"], default="all")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--spacing", type=float, nargs=3, help="mm along i j k (default: the dataset's)")
    p.add_argument("--patch", type=int, nargs=3, help="patch size i j k (default: the dataset's)")
    p.add_argument("--largest-component", default=None, metavar="NAMES",
                   help="evaluate with these classes (comma-separated, or 'all') kept to their largest part")
    p.add_argument("--md", help="markdown report (default docs/BENCHMARKS_training_<dataset>.md)")
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from SegmentationAILib.cases import cases_from_folder
    from SegmentationAILib.label_mapping import LabelMapping
    from SegmentationAILib.training.transforms import AugmentationSettings
    from SegmentationAILib.training.settings import TrainingSettings
    from SegmentationAILib.training.loop import train

    d = dict(DATASETS[args.dataset])
    d["spacing"] = args.spacing or d["spacing"]
    d["patch"] = args.patch or d["patch"]
    out = Path(args.out) / args.dataset
    model_dir = out / "model"
    mapping = LabelMapping.parse(d["classes"])
    t0 = time.time()
    val_cases = cases_from_folder(d["val"], d["channels"], d["labels"])
    print(f"loaded {len(val_cases)} validation cases in {time.time() - t0:.1f}s", flush=True)
    if args.stage in ("all", "train"):
        train_cases = cases_from_folder(d["train"], d["channels"], d["labels"])
        print(f"loaded {len(train_cases)} training cases", flush=True)
        aug = AugmentationSettings(flip_axes=d["flip_axes"], samples_per_case=2, class_balanced=d["class_balanced"])
        # a first guess of the epoch count; the time budget below is what actually stops it
        settings = TrainingSettings(
            modality=d["modality"],
            spacing=d["spacing"],
            patch_size=d["patch"],
            unet_channels=[16, 32, 64, 128],
            unet_strides=[2, 2, 2],
            num_res_units=1,
            epochs=1000,
            steps_per_epoch=args.steps_per_epoch,
            batch_size=2,
            learning_rate=d["lr"],
            weight_decay=1e-5,
            schedule="poly",
            seed=0,
            device="cpu",
            threads=args.threads,
            augmentation=aug,
            name=f"bench-{args.dataset}",
            command=" ".join(sys.argv),
        )
        budget = args.minutes * 60
        t_start = time.time()
        state = {"epochs_done": 0}

        def on_epoch(record):
            state["epochs_done"] = record["epoch"]
            print(json.dumps(record), flush=True)

        # the epoch count comes from a timing probe (5 steps on 2 cases) and the time budget
        import shutil

        probe_dir = out / "probe"
        shutil.rmtree(str(probe_dir) + ".training", ignore_errors=True)
        shutil.rmtree(probe_dir, ignore_errors=True)
        stamps = []
        probe = TrainingSettings.from_dict({**settings.to_dict(), "epochs": 1, "steps_per_epoch": 6})
        train(
            train_cases[:2],
            mapping,
            probe_dir,
            probe,
            val_cases=val_cases[:1],
            progress=lambda f, m: stamps.append(time.time()) if "step" in m else None,
        )
        per_step = float(sorted(b - a for a, b in itertools.pairwise(stamps[1:]))[len(stamps[2:]) // 2])
        shutil.rmtree(str(probe_dir) + ".training", ignore_errors=True)
        shutil.rmtree(probe_dir, ignore_errors=True)
        epochs = max(2, int(budget / (per_step * settings.steps_per_epoch * 1.2)))
        settings.epochs = epochs
        print(f"~{per_step:.2f} s/step -> {epochs} epochs of {settings.steps_per_epoch} steps", flush=True)
        if model_dir.exists():
            shutil.rmtree(model_dir)
        if not args.resume:
            shutil.rmtree(str(model_dir) + ".training", ignore_errors=True)
        result = train(
            train_cases, mapping, model_dir, settings, val_cases=val_cases, resume=args.resume, on_epoch=on_epoch
        )
        print(
            f"trained {result.best_epoch} best epoch, val mean Dice {result.best_val_dice}, "
            f"{(time.time() - t_start) / 60:.1f} min",
            flush=True,
        )
    if args.stage in ("all", "eval"):
        from SegmentationAILib.evaluation import evaluate_model

        t1 = time.time()
        from SegmentationAILib.postprocessing import largest_component_names, largest_component_option

        lcc = largest_component_names(args.largest_component) or []
        options = {"largest_component": largest_component_option(args.largest_component)} if lcc else None
        ev = evaluate_model([model_dir], val_cases, mapping, device="cpu", tta=False, groups=d["groups"],
                            options=options)
        ev.write_csv(out / "evaluation.csv")
        ev.write_json(out / "evaluation.json")
        print(f"evaluated in {time.time() - t1:.1f}s")
        print(ev.summary_text())
        md = write_markdown(
            args.dataset, d, ev, model_dir, lcc, Path(args.md or ROOT / "docs" / f"BENCHMARKS_training_{args.dataset}.md")
        )
        print(f"wrote {md}")
    return 0


def write_markdown(name: str, d: dict, ev, model_dir: Path, lcc: list, path: Path) -> Path:
    """Per-class mean ± sd over the validation cases, per-case Dice, and how the model was trained."""
    import platform
    from datetime import datetime, timezone

    import numpy as np

    metrics = json.loads((Path(str(model_dir) + ".training") / "metrics.json").read_text())
    card = json.loads((model_dir / "model.json").read_text())
    s = ev.summary()
    lines = [
        f"# Training benchmark: {name}",
        "",
        f"- Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {platform.machine()}, "
        f"{os.cpu_count()} CPU cores (shared), no GPU; torch {__import__('torch').__version__}.",
        f"- Command: `python benchmarks/bench_training.py {name} --minutes ...` (train on `{d['train'].relative_to(SHARED)}`,"
        f" validate on `{d['val'].relative_to(SHARED)}` of `../shared/data`; research data, nothing ships).",
        f"- Model: MONAI UNet {card['architecture']['channels']}, spacing {card['spacing']} mm, patch "
        f"{card['patch_size']}; {len(metrics['epochs'])} epochs of {metrics['epochs'][0].get('step', 0)} steps, "
        f"best epoch {metrics['best_epoch']} (validation mean Dice {metrics['best_val_mean_dice']}); "
        f"training time {sum(e.get('time_s', 0) for e in metrics['epochs']) / 60:.0f} min on 1 CPU thread.",
        "- Evaluation: the extension's own inference (`evaluate_model`: resample, sliding window, post-processing, "
        "back to the original grid), no TTA; metrics per case, then mean ± sd over cases. Largest connected "
        f"component kept for: {', '.join(lcc) if lcc else 'none'} (`--largest-component`).",
        "- Model selection: the epoch with the best validation Dice on these same validation cases (there is no "
        "separate test set in this data), so the numbers are slightly optimistic.",
        "",
        "| structure | Dice | IoU | HD95 mm | ASD mm | volume diff % |",
        "|---|---|---|---|---|---|",
    ]

    def f(x):
        return f"{x['mean']:.3f} ± {x['sd']:.3f}" if np.isfinite(x["mean"]) else "n/a"

    for structure in ev.structures:
        m = s[structure]
        lines.append(
            f"| {structure} | {f(m['dice'])} | {f(m['iou'])} | {f(m['hd95_mm'])} | {f(m['asd_mm'])} | "
            f"{f(m['volume_diff_pct'])} |"
        )
    lines += ["", f"Mean Dice over structures: **{ev.mean_dice():.3f}**.", ""]
    path.write_text("\n".join(lines) + "\n")
    return path


if __name__ == "__main__":
    sys.exit(main())
