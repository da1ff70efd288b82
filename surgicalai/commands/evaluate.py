"""``surgicalai evaluate MODEL CASES...``: Dice, IoU, HD95, ASD (mm) and volume difference per case
and structure, through the extension's own inference, with a mean ± sd summary.

MODEL is a model folder, or a folder of fold model folders (``fold_0``, ...) evaluated as an
ensemble; ``--model`` adds more ensemble members. The reference labels are matched to the model's
labels by value, or by name through ``--class`` mappings (as in ``surgicalai train``).
"""
from __future__ import annotations

from pathlib import Path

HELP = "evaluate a segmentation model (or ensemble) against labelled cases: Dice, IoU, HD95, ASD, volume"


def add_arguments(parser) -> None:
    parser.add_argument("model", help="model folder, or a folder of fold_* model folders (ensemble)")
    parser.add_argument("cases", nargs="+", help="case folders or .csv/.json case lists")
    parser.add_argument("--model", dest="more_models", action="append", default=[], help="another ensemble member")
    parser.add_argument("--image", action="append", default=[], metavar="PATTERN", help="image channel glob")
    parser.add_argument("--label", action="append", default=[], metavar="PATTERN", help="label image glob")
    parser.add_argument("--class", dest="classes", action="append", default=[], metavar="NAME=[SOURCE:]VALUES",
                        help="reference classes (names must be the model's label names)")
    parser.add_argument("--group", action="append", default=[], metavar="NAME=A,B",
                        help="also measure the union of some structures (e.g. brain_mask=brain,whole_tumour)")
    parser.add_argument("-o", "--output", default=None, help="CSV file of per-case rows and the summary")
    parser.add_argument("--json", default=None, help="JSON file of rows and summary")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-tta", action="store_true", help="no mirroring test-time augmentation")
    parser.add_argument("--largest-component", default=None, metavar="NAMES",
                        help="also keep these classes (comma-separated, or 'all') to their largest connected part")
    parser.add_argument("--quiet", action="store_true")


def model_folders(path: str):
    """A model folder, or the fold_* model folders inside ``path``."""
    p = Path(path)
    if (p / "model.json").is_file():
        return [p]
    folds = sorted(d for d in p.glob("fold_*") if (d / "model.json").is_file())
    return folds or [p]


def _write_outputs(result, args) -> None:
    """The CSV and the JSON appear together or not at all."""
    from SurgicalAICore.atomic import atomic_files

    pairs = [(Path(o), w) for o, w in ((args.output, result.write_csv), (args.json, result.write_json)) if o]
    with atomic_files([p for p, _ in pairs]) as temps:
        for tmp, (_, write) in zip(temps, pairs, strict=False):
            write(tmp)


def run(args) -> int:
    from SegmentationAILib.cases import collect_cases
    from SurgicalAICore.errors import InputError
    from SegmentationAILib.evaluation import evaluate_model
    from SegmentationAILib.label_mapping import LabelMapping
    from SegmentationAILib.postprocessing import largest_component_option
    from SurgicalAICore.progress import tqdm_callback
    from SurgicalAICore.validation import check_output_not_input

    outputs = [Path(o) for o in (args.output, args.json) if o]
    for out in outputs:
        if not out.resolve().parent.is_dir():
            raise InputError(f"Folder {out.parent} does not exist; cannot write {out.name}.")
        if out.is_dir():
            raise InputError(f"Output {out} is a folder; give a file name.")
        check_output_not_input(out, [args.model, *args.more_models, *args.cases], "output")
    if len(outputs) == 2 and outputs[0].resolve() == outputs[1].resolve():
        raise InputError("-o and --json name the same file.")
    groups = {}
    for g in args.group:
        if "=" not in g:
            raise InputError(f"--group '{g}' must read NAME=A,B.")
        name, members = g.split("=", 1)
        groups[name.strip()] = [m.strip() for m in members.split(",") if m.strip()]
    folder_inputs = [c for c in args.cases if not str(c).lower().endswith((".csv", ".json"))]
    if folder_inputs and (not args.image or not args.label):
        raise InputError("Case folders need --image and --label patterns.")
    cases = collect_cases(args.cases, args.image, args.label)
    mapping = LabelMapping.parse(args.classes) if args.classes else None
    models = model_folders(args.model) + [Path(m) for m in args.more_models]
    lcc = largest_component_option(args.largest_component)
    options = {"largest_component": lcc} if lcc else None
    result = evaluate_model(models, cases, mapping, device=args.device, tta=False if args.no_tta else None,
                            groups=groups, progress=None if args.quiet else tqdm_callback("evaluate"),
                            options=options)
    _write_outputs(result, args)
    print(f"{len(cases)} case(s), {len(models)} model(s)")
    print(result.summary_text())
    return 0
