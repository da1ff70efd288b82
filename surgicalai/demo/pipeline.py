"""``surgicalai demo``: the whole extension on the bundled sample data, headless.

The demo is a pipeline of steps, one per capability, sharing a :class:`DemoContext` (one MRML
scene, the output folder, pictures and numbers). Each step lives in its Lib as
``run_demo_step(ctx)``. At the end the scene is saved as ``.mrb`` and an HTML report gathers
every picture and number.
"""

from __future__ import annotations

import html
import importlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HELP = "run the demo on the bundled sample data and write results to a folder"

STEPS: list[tuple[str, str]] = [
    ("Segmentation of the sample CT", "surgicalai.demo.segmentation"),
    ("Synthetic endoscopy and depth", "surgicalai.demo.depth"),
    ("Registration to CT and overlay", "surgicalai.demo.registration"),
]


@dataclass
class DemoContext:
    out_dir: Path
    scene: Any
    device: str = "auto"
    quick: bool = False
    pictures: list[tuple[str, Path]] = field(default_factory=list)  # (caption, file)
    files: list[tuple[str, Path]] = field(default_factory=list)  # (what, file)
    numbers: dict[str, dict[str, Any]] = field(default_factory=dict)  # section -> name -> value
    shared: dict[str, Any] = field(default_factory=dict)  # hand-over between steps (nodes, paths)
    final_dir: Path | None = None  # where out_dir (a hidden working folder) is moved when complete

    def say(self, message: str) -> None:
        if self.final_dir is not None:  # name the folder the user will find, never the working one
            message = message.replace(str(self.out_dir), str(self.final_dir))
        print(f"[demo] {message}", flush=True)

    def picture(self, caption: str, path: Path) -> None:
        self.pictures.append((caption, Path(path)))
        self.say(f"picture: {path}")

    def file(self, what: str, path: Path) -> None:
        self.files.append((what, Path(path)))
        self.say(f"{what}: {path}")


def add_arguments(parser) -> None:
    parser.add_argument("-o", "--output", default="demo_output", help="output folder (default: ./demo_output)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--quick", action="store_true", help="fewer frames, for a fast check")


def write_report(ctx: DemoContext, seconds: dict[str, float]) -> Path:
    parts = [
        "<!doctype html><meta charset='utf-8'><title>SlicerSurgicalAI demo</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}img{max-width:100%;border:1px solid #ccc}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px}</style>",
        "<h1>SlicerSurgicalAI demo</h1>",
    ]
    for section, values in ctx.numbers.items():
        parts.append(f"<h2>{html.escape(section)}</h2><table>")
        for key, value in values.items():
            text = f"{value:.4g}" if isinstance(value, float) else str(value)
            parts.append(f"<tr><th>{html.escape(key)}</th><td>{html.escape(text)}</td></tr>")
        parts.append("</table>")
    parts.append("<h2>Pictures</h2>")
    for caption, path in ctx.pictures:
        rel = path.relative_to(ctx.out_dir) if path.is_relative_to(ctx.out_dir) else path
        parts.append(
            f"<figure><img src='{html.escape(str(rel))}'><figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    parts.append("<h2>Files</h2><ul>")
    for what, path in ctx.files:
        rel = path.relative_to(ctx.out_dir) if path.is_relative_to(ctx.out_dir) else path
        parts.append(f"<li>{html.escape(what)}: <a href='{html.escape(str(rel))}'>{html.escape(str(rel))}</a></li>")
    parts.append("</ul><h2>Time per step (s)</h2><table>")
    parts += [f"<tr><th>{html.escape(k)}</th><td>{v:.1f}</td></tr>" for k, v in seconds.items()]
    parts.append("</table>")
    report = ctx.out_dir / "report.html"
    report.write_text("\n".join(parts), encoding="utf-8")
    return report


MARKER = ".surgicalai-demo"


def prepare_output(out: Path) -> None:
    """An empty (or new) folder, or an earlier demo's output (replaced); anything else is refused
    before any work starts, so a user's files are never overwritten."""
    import shutil

    from SurgicalAICore.errors import InputError

    if out.exists() and not out.is_dir():
        raise InputError(f"Output {out} is a file, not a folder.")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise InputError(
                f"Output folder {out} is not empty and is not an earlier demo's output; choose a new or empty folder."
            )
        for child in out.iterdir():
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / MARKER).write_text("written by 'surgicalai demo'; the next demo run may replace this folder\n")
    except OSError as error:
        raise InputError(f"Cannot write to {out}: {error.strerror}.") from None


def check_output(out: Path) -> None:
    """Refuse, before any work, an output that is a file, a user's non-empty folder, or has no parent."""
    from SurgicalAICore.errors import InputError
    from SurgicalAICore.validation import check_output_folder

    if out.exists() and not out.is_dir():
        raise InputError(f"Output {out} is a file, not a folder.")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise InputError(
            f"Output folder {out} is not empty and is not an earlier demo's output; choose a new or empty folder."
        )
    check_output_folder(out, "demo output folder")


def run_demo(out_dir, device: str = "auto", quick: bool = False) -> DemoContext:
    """The results are built in a hidden folder beside ``out_dir`` and moved into place when complete:
    an interrupted run leaves no partial folder and keeps an earlier demo's output as it was."""
    from SurgicalAICore.atomic import atomic_dir

    out = Path(out_dir).resolve()
    check_output(out)
    with atomic_dir(out, replace=True) as tmp:
        prepare_output(tmp)
        ctx = _run_steps(tmp, out, device, quick)

    def moved(path: Path) -> Path:
        return out / path.relative_to(tmp) if path.is_relative_to(tmp) else path

    ctx.pictures = [(caption, moved(p)) for caption, p in ctx.pictures]
    ctx.files = [(what, moved(p)) for what, p in ctx.files]
    ctx.out_dir = out
    ctx.say(f"all results are in {out}")
    return ctx


def _run_steps(tmp: Path, out: Path, device: str, quick: bool) -> DemoContext:
    from SurgicalAICore.mrml.bundle import save_scene_bundle
    from SurgicalAICore.mrml.scene import new_scene

    ctx = DemoContext(out_dir=tmp, scene=new_scene(), device=device, quick=quick, final_dir=out)
    seconds: dict[str, float] = {}
    for title, module_name in STEPS:
        ctx.say(f"== {title}")
        start = time.perf_counter()
        importlib.import_module(module_name).run_demo_step(ctx)
        seconds[title] = time.perf_counter() - start
    mrb = save_scene_bundle(ctx.scene, tmp / "scene.mrb")
    ctx.file("Slicer scene (open in 3D Slicer)", mrb)
    numbers = json.dumps(ctx.numbers, indent=2, default=str).replace(str(tmp), str(out))
    (tmp / "numbers.json").write_text(numbers + "\n")
    report = write_report(ctx, seconds)
    ctx.say(f"report: {report}")
    return ctx


def run(args) -> int:
    run_demo(args.output, device=args.device, quick=args.quick)
    return 0
