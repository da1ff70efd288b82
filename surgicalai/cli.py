"""``surgicalai``: one console command, one subcommand per capability.

Each subcommand lives in its Lib as a module exposing ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``; those modules import heavy packages inside ``run`` so ``--help`` stays fast.
Errors the user can act on (SurgicalAIError, OSError) are printed as one line, exit code 2; any other
exception is one line naming the input and how to report it, exit code 1 (``--debug`` shows the
traceback). SIGTERM cancels like Ctrl-C: temporaries are removed, nothing is left half-written.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

SUBCOMMANDS = [
    ("segment", "surgicalai.commands.segment"),
    ("train", "surgicalai.commands.train"),
    ("evaluate", "surgicalai.commands.evaluate"),
    ("render", "surgicalai.commands.render"),
    ("train-depth", "surgicalai.commands.train_depth"),
    ("eval-depth", "surgicalai.commands.eval_depth"),
    ("adapt-depth", "surgicalai.commands.adapt_depth"),
    ("eval-depth-sparse", "surgicalai.commands.eval_depth_sparse"),
    ("depth", "surgicalai.commands.depth"),
    ("calibrate-stereo", "surgicalai.commands.calibrate_stereo"),
    ("stereo-teach", "surgicalai.commands.stereo_teach"),
    ("register", "surgicalai.commands.register"),
    ("fuse", "surgicalai.commands.fuse"),
    ("demo", "surgicalai.demo.pipeline"),
    ("web", "surgicalai.commands.web"),
]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand, or of ``only`` (its module alone is imported: building them all
    imports torch, seconds that ``surgicalai web`` would add to its start)."""
    parser = argparse.ArgumentParser(
        prog="surgicalai", description="SlicerSurgicalAI: segmentation, surgical depth, registration."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an unexpected error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module_name in SUBCOMMANDS:
        if only is not None and name != only:
            continue
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


REPORT_URL = "https://github.com/SlicerSurgicalAI/SlicerSurgicalAI/issues"


def _first_input(args) -> str:
    for name in ("input", "cloud", "cases", "datasets", "dataset", "scenario"):
        value = getattr(args, name, None)
        if value:
            return str(value)
    return "(no input file)"


def _close_progress_bars() -> None:
    """On a terminal an error goes on its own line, not onto a half-drawn progress bar (the bars do not
    stay); in a log the bar text stays as it was written."""
    if not sys.stderr.isatty():
        return
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", None) or []):
        bar.close()


def _unexpected(args, error: BaseException) -> int:
    text = " ".join(str(error).split())[:200] or "no message"
    print(
        f"surgicalai {args.command}: unexpected error ({type(error).__name__}: {text}) on {_first_input(args)}; "
        f"nothing was written. Please report it at {REPORT_URL} with the command line "
        "(rerun with --debug for the traceback).",
        file=sys.stderr,
    )
    return 1


def main(argv: list[str] | None = None) -> int:
    from SurgicalAICore.signals import install_cancel_handlers

    argv = sys.argv[1:] if argv is None else argv
    words = [a for a in argv if not a.startswith("-")]
    named = words[0] if words and words[0] in dict(SUBCOMMANDS) else None
    args = build_parser(only=named).parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    install_cancel_handlers()
    return _run(args)


def _kept(args) -> str:
    """What an interrupted command kept on purpose (a resumable checkpoint), from its module's ``kept_after_stop``."""
    kept = getattr(sys.modules.get(getattr(args._run, "__module__", ""), None), "kept_after_stop", None)
    try:
        note = kept(args) if kept is not None else None
    except Exception:  # the message must not fail on its way out
        note = None
    return f"; {note}" if note else ""


def _run(args) -> int:
    from SurgicalAICore.errors import OperationCancelled, SurgicalAIError
    from SurgicalAICore.signals import Terminated

    try:
        try:
            return int(args._run(args) or 0)
        finally:
            _close_progress_bars()
    except OperationCancelled as error:
        print(f"surgicalai {args.command}: {error}", file=sys.stderr)
        return 130
    except KeyboardInterrupt as interrupt:
        what = "terminated" if isinstance(interrupt, Terminated) else "interrupted"
        print(f"surgicalai {args.command}: {what}; nothing was written half-way{_kept(args)}.", file=sys.stderr)
        return 143 if isinstance(interrupt, Terminated) else 130
    except SurgicalAIError as error:
        print(f"surgicalai {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        where = f": {error.filename}" if getattr(error, "filename", None) else ""
        print(f"surgicalai {args.command}: error: {error.strerror or error}{where}", file=sys.stderr)
        return 2
    except MemoryError:
        print(
            f"surgicalai {args.command}: error: out of memory on {_first_input(args)}; "
            "nothing was written (try a smaller input or setting).",
            file=sys.stderr,
        )
        return 2
    except Exception as error:
        if args.debug:
            raise
        return _unexpected(args, error)


if __name__ == "__main__":
    sys.exit(main())
