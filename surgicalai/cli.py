"""``surgicalai``: one console command, one subcommand per capability.

Each subcommand lives in its Lib as a module exposing ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``; those modules import heavy packages inside ``run`` so ``--help`` stays fast.
Errors the user can act on (SurgicalAIError, OSError) are printed as one line, exit code 2.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import List, Optional

SUBCOMMANDS = [
    ("segment", "SegmentationAILib.cli_segment"),
    ("train", "SegmentationAILib.cli_train"),
    ("evaluate", "SegmentationAILib.cli_evaluate"),
    ("render", "SurgicalDepthLib.cli_render"),
    ("train-depth", "SurgicalDepthLib.cli_train_depth"),
    ("eval-depth", "SurgicalDepthLib.cli_eval_depth"),
    ("adapt-depth", "SurgicalDepthLib.cli_adapt_depth"),
    ("depth", "SurgicalDepthLib.cli_depth"),
    ("register", "SurgicalDepthLib.cli_register"),
    ("demo", "surgicalai.demo"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="surgicalai", description="SlicerSurgicalAI: segmentation, surgical depth, registration.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module_name in SUBCOMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            continue  # capability not installed in this build
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    from SegmentationAILib.errors import OperationCancelled, SurgicalAIError

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        return int(args._run(args) or 0)
    except OperationCancelled as error:
        print(f"surgicalai {args.command}: {error}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"surgicalai {args.command}: interrupted; nothing was written half-way.", file=sys.stderr)
        return 130
    except SurgicalAIError as error:
        print(f"surgicalai {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        where = f": {error.filename}" if getattr(error, "filename", None) else ""
        print(f"surgicalai {args.command}: error: {error.strerror or error}{where}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
