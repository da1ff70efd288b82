"""``surgicalai train CASES... -o MODEL``: train or fine-tune a segmentation U-Net.

CASES are case folders (with ``--image``/``--label`` glob patterns, see :mod:`cases`) or list files
(.csv/.json). Validation: ``--val CASES...``, else ``--val-fraction`` of the cases, or k-fold
(``--folds K --fold I``; ``--fold all`` trains every fold into ``MODEL/fold_<i>``, an ensemble for
``surgicalai evaluate``/``segment``). Runs under ``torchrun --nproc_per_node=N -m surgicalai.cli
train ...`` with DistributedDataParallel. Examples::

    surgicalai train data/train --image '*_ct.nii.gz' --label '*_oars.nii.gz' \\
        --class Brainstem=1 --class Mandible=7 --val data/validation -o /tmp/hn-model --epochs 20
    surgicalai train brats/train --image 'Flair*' --image 'T1c*' --label 'OTMultiClass*' \\
        --label 'brainmask*' --class brain=brainmask:1 --class whole_tumour=OTMultiClass:1-4 \\
        --modality MR -o /tmp/brats-model
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys

from SurgicalAICore.panel.choices import Device, Modality, values

HELP = "train or fine-tune a segmentation U-Net on labelled cases (folders, list files)"


def _ints(text: str):
    return [int(x) for x in text.replace(" ", "").split(",") if x]


def add_arguments(parser) -> None:
    parser.add_argument("cases", nargs="+", help="case folders or .csv/.json case lists")
    parser.add_argument("-o", "--output", required=True, help="output model folder (must not exist)")
    parser.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="PATTERN",
        help="glob of an image channel in a case folder (repeat for several channels)",
    )
    parser.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="PATTERN",
        help="glob of a label image in a case folder (repeat for several sources)",
    )
    parser.add_argument(
        "--class",
        dest="classes",
        action="append",
        default=[],
        metavar="NAME=[SOURCE:]VALUES",
        help="a class from label values, merged with commas/ranges (default: one per value)",
    )
    parser.add_argument("--val", nargs="+", default=None, metavar="CASES", help="validation case folders/lists")
    parser.add_argument("--val-fraction", type=float, default=0.2, help="validation share when --val is not given")
    parser.add_argument("--folds", type=int, default=0, help="k-fold cross-validation with K folds")
    parser.add_argument("--fold", default="0", help="fold to train (0..K-1) or 'all'")
    parser.add_argument("--finetune", default=None, metavar="MODEL", help="start from this model folder")
    parser.add_argument("--resume", action="store_true", help="continue the run in OUTPUT.training")
    parser.add_argument("--modality", default="CT", choices=values(Modality))
    parser.add_argument("--channel-names", default=None, help="comma-separated input channel names")
    parser.add_argument("--spacing", type=float, nargs=3, default=None, help="mm along i j k (default: median)")
    parser.add_argument("--patch", type=int, nargs=3, default=[64, 64, 64], help="patch size i j k (multiples of 16)")
    parser.add_argument("--unet-channels", type=_ints, default=[16, 32, 64, 128])
    parser.add_argument("--strides", type=_ints, default=[2, 2, 2])
    parser.add_argument("--res-units", type=int, default=1)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--steps-per-epoch", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=2, help="cases per step")
    parser.add_argument("--patches-per-case", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-5)
    parser.add_argument("--schedule", default="poly", choices=["poly", "cosine", "constant"])
    parser.add_argument("--class-balanced", action="store_true", help="equal patch share per class")
    parser.add_argument("--flip-axes", default="0,1,2", help="flip augmentation axes (0=i,1=j,2=k) or 'none'")
    parser.add_argument("--elastic", type=float, default=0.0, help="probability of elastic deformation")
    parser.add_argument("--no-augment", action="store_true", help="patch sampling only")
    parser.add_argument("--largest-component", default=None, metavar="NAMES",
                        help="comma-separated classes (or 'all') the card keeps to their largest connected part")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help=", ".join(values(Device)))
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    parser.add_argument("--name", default=None, help="model name in the card (default: output folder name)")
    parser.add_argument("--description", default="")
    parser.add_argument("--quiet", action="store_true")
    parser.set_defaults(_train_parser=parser)


def command_line(args) -> str:
    """The command as run, rebuilt from the parsed options that differ from their defaults (recorded in the card)."""
    parser = getattr(args, "_train_parser", None)
    words = ["surgicalai", "train"] + [str(c) for c in args.cases]
    if parser is None:
        return " ".join(shlex.quote(w) for w in words)
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help", "cases"):
            continue
        value = getattr(args, action.dest, None)
        if value == action.default or value is None:
            continue
        flag = action.option_strings[-1]
        if action.nargs == 0:
            words.append(flag)
        elif action.__class__.__name__ == "_AppendAction":
            for v in value:
                words += [flag, str(v)]
        elif isinstance(value, (list, tuple)):
            if action.type is _ints:
                words += [flag, ",".join(str(v) for v in value)]
            else:
                words += [flag] + [str(v) for v in value]
        else:
            words += [flag, str(value)]
    return " ".join(shlex.quote(w) for w in words)


def settings_from_args(args):
    from SurgicalAICore.errors import InputError
    from SegmentationAILib.training.transforms import AugmentationSettings
    from SegmentationAILib.postprocessing import largest_component_names
    from SegmentationAILib.training.settings import TrainingSettings

    if args.no_augment:
        aug = AugmentationSettings.none()
    else:
        aug = AugmentationSettings(elastic_prob=args.elastic)
        if args.flip_axes.strip().lower() == "none":
            aug.flip_prob = 0.0
        else:
            axes = _ints(args.flip_axes)
            if any(a not in (0, 1, 2) for a in axes):
                raise InputError(f"--flip-axes takes 0, 1, 2 or 'none'; got {args.flip_axes}.")
            aug.flip_axes = axes
    aug.samples_per_case = args.patches_per_case
    aug.class_balanced = args.class_balanced
    from pathlib import Path

    return TrainingSettings(
        modality=args.modality,
        channel_names=args.channel_names.split(",") if args.channel_names else None,
        spacing=args.spacing,
        patch_size=list(args.patch),
        unet_channels=args.unet_channels,
        unet_strides=args.strides,
        num_res_units=args.res_units,
        dropout=args.dropout,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        val_fraction=args.val_fraction if not args.val else 0.0,
        folds=args.folds,
        fold=0 if args.fold == "all" else int(args.fold),
        seed=args.seed,
        device=args.device,
        amp=not args.no_amp,
        threads=args.threads,
        augmentation=aug,
        largest_component=largest_component_names(args.largest_component),
        name=args.name or Path(args.output).name,
        description=args.description,
        command=command_line(args),
    )


def _train(args, cases, val_cases, mapping, settings, progress, on_epoch):
    from SegmentationAILib.training.loop import train, train_folds

    if args.fold == "all":
        return train_folds(
            cases,
            mapping,
            args.output,
            settings,
            init_model=args.finetune,
            resume=args.resume,
            progress=progress,
            on_epoch=on_epoch,
        )
    return [
        train(
            cases,
            mapping,
            args.output,
            settings,
            val_cases=val_cases,
            init_model=args.finetune,
            resume=args.resume,
            progress=progress,
            on_epoch=on_epoch,
        )
    ]


def _warn_resume(args, settings) -> None:
    """Say which of the given options a resumed run ignores (its stored settings win)."""
    from pathlib import Path

    from SegmentationAILib.training.loop import CHECKPOINT, load_checkpoint
    from SegmentationAILib.training.settings import TrainingSettings

    path = Path(str(args.output) + ".training") / CHECKPOINT
    if args.fold == "all" or not path.is_file():
        return  # the loop says what is missing
    notice = settings.resume_notice(TrainingSettings.from_dict(load_checkpoint(path)["settings"]))
    if notice:
        print(f"warning: {notice}", file=sys.stderr)


def run(args) -> int:
    from tqdm import tqdm

    from SegmentationAILib.training import distributed
    from SegmentationAILib.cases import collect_cases
    from SurgicalAICore.errors import InputError
    from SegmentationAILib.label_mapping import LabelMapping, check_mapping
    from SurgicalAICore.progress import tqdm_callback

    settings = settings_from_args(args).validate()
    folder_inputs = [
        c for c in list(args.cases) + list(args.val or []) if not str(c).lower().endswith((".csv", ".json"))
    ]
    if folder_inputs and (not args.image or not args.label):
        raise InputError(
            "Case folders need --image and --label patterns (e.g. --image '*_ct.nii.gz' --label '*_seg.nii.gz')."
        )
    cases = collect_cases(args.cases, args.image, args.label)
    val_cases = collect_cases(args.val, args.image, args.label) if args.val else None
    mapping = LabelMapping.parse(args.classes) if args.classes else LabelMapping.identity(cases)
    report = check_mapping(mapping, list(cases) + list(val_cases or []))
    main_rank = not distributed.launched_by_torchrun() or os.environ.get("RANK") == "0"
    if main_rank and not args.quiet:
        print(
            f"{len(cases)} training case(s){f', {len(val_cases)} validation case(s)' if val_cases else ''}; "
            f"classes: {', '.join(mapping.names)}"
        )
        for problem in report.problems:
            print(f"warning: {problem}", file=sys.stderr)
    progress = tqdm_callback("train") if main_rank and not args.quiet else None

    def on_epoch(record):
        if args.quiet:
            return
        dice = f" val Dice {record['val_mean_dice']:.3f}" if "val_mean_dice" in record else ""
        tqdm.write(f"epoch {record['epoch']}: loss {record['train_loss']:.4f}{dice}", file=sys.stderr)

    if args.resume and main_rank:
        _warn_resume(args, settings)
    from SurgicalAICore.locks import run_lock

    with run_lock(args.output) if main_rank else contextlib.nullcontext():
        results = _train(args, cases, val_cases, mapping, settings, progress, on_epoch)
    if main_rank:
        for r in results:
            best = (
                f"best validation mean Dice {r.best_val_dice:.3f} (epoch {r.best_epoch})"
                if r.best_val_dice is not None
                else "no validation"
            )
            print(f"model written to {r.model_path}; {best}; curves in {r.work_dir / 'curves.png'}")
    distributed.shutdown()
    return 0


def kept_after_stop(args) -> str | None:
    from pathlib import Path

    from SegmentationAILib.training.loop import CHECKPOINT

    work = Path(str(args.output) + ".training")
    if (work / CHECKPOINT).is_file():
        return f"the last finished epoch is kept in {work}: run the same command with --resume to finish"
    return None
