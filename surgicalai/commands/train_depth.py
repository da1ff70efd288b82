"""``surgicalai train-depth DATASET... -o MODELDIR``: train the compact depth network."""

from __future__ import annotations

import argparse

HELP = "train the compact depth network on synthetic depth datasets"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("datasets", nargs="+", help="dataset folders written by 'surgicalai render'")
    parser.add_argument("-o", "--output", required=True, help="model folder to write")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--crop", default="256x320", help="training crop HxW (multiples of 32; default the whole frame)"
    )
    parser.add_argument("--augment-strength", type=float, default=0.6, help="scale of appearance augmentation (0-1)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--silog-lambda", type=float, default=0.5, help="1 = fully scale invariant")
    parser.add_argument("--gradient-weight", type=float, default=0.5)
    parser.add_argument("--ssi-weight", type=float, default=0.0, help="scale-and-shift-invariant inverse-depth loss")
    parser.add_argument("--val-every", type=int, default=200)
    parser.add_argument("--val-scenario", help="hold this scenario out of training and report it separately")
    parser.add_argument("--minutes", type=float, help="stop after this wall-clock budget (all resumed legs together)")
    parser.add_argument("--leg-minutes", type=float, help="stop this run after these minutes (resume later)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--resume", action="store_true", help="continue from <output>.checkpoints/last.pt")
    parser.add_argument("--overwrite", action="store_true")


def run(args: argparse.Namespace) -> int:
    from SurgicalAICore.locks import run_lock
    from SurgicalAICore.progress import tqdm_callback

    from SurgicalDepthLib.depth.training import TrainConfig, train_depth_model
    from SurgicalDepthLib.synthetic.dataset import parse_size

    cfg = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        crop=parse_size(args.crop),
        lr=args.lr,
        silog_lambda=args.silog_lambda,
        gradient_weight=args.gradient_weight,
        ssi_weight=args.ssi_weight,
        val_every=args.val_every,
        max_minutes=args.minutes,
        leg_minutes=args.leg_minutes,
        augment_strength=args.augment_strength,
        seed=args.seed,
        threads=args.threads,
        device=args.device,
    )
    cfg.validate()
    with run_lock(args.output):
        out = train_depth_model(
            args.datasets,
            args.output,
            cfg,
            resume=args.resume,
            val_scenario=args.val_scenario,
            overwrite=args.overwrite,
            progress=tqdm_callback("train-depth"),
            log=lambda m: print(m, flush=True),
        )
    print(f"wrote model {out}")
    return 0
