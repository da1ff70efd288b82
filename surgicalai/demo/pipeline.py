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
from typing import Any, Dict, List, Tuple

HELP = "run the demo on the bundled sample data and write results to a folder"

STEPS: List[Tuple[str, str]] = [
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
    pictures: List[Tuple[str, Path]] = field(default_factory=list)   # (caption, file)
    files: List[Tuple[str, Path]] = field(default_factory=list)      # (what, file)
    numbers: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # section -> name -> value
    shared: Dict[str, Any] = field(default_factory=dict)             # hand-over between steps (nodes, paths)

    def say(self, message: str) -> None:
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


def write_report(ctx: DemoContext, seconds: Dict[str, float]) -> Path:
    parts = ["<!doctype html><meta charset='utf-8'><title>SlicerSurgicalAI demo</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}img{max-width:100%;border:1px solid #ccc}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px}</style>",
             "<h1>SlicerSurgicalAI demo</h1>"]
    for section, values in ctx.numbers.items():
        parts.append(f"<h2>{html.escape(section)}</h2><table>")
        for key, value in values.items():
            text = f"{value:.4g}" if isinstance(value, float) else str(value)
            parts.append(f"<tr><th>{html.escape(key)}</th><td>{html.escape(text)}</td></tr>")
        parts.append("</table>")
    parts.append("<h2>Pictures</h2>")
    for caption, path in ctx.pictures:
        rel = path.relative_to(ctx.out_dir) if path.is_relative_to(ctx.out_dir) else path
        parts.append(f"<figure><img src='{html.escape(str(rel))}'><figcaption>{html.escape(caption)}</figcaption></figure>")
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
            raise InputError(f"Output folder {out} is not empty and is not an earlier demo's output; "
                             "choose a new or empty folder.")
        for child in out.iterdir():
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / MARKER).write_text("written by 'surgicalai demo'; the next demo run may replace this folder\n")
    except OSError as error:
        raise InputError(f"Cannot write to {out}: {error.strerror}.") from None


def run_demo(out_dir, device: str = "auto", quick: bool = False) -> DemoContext:
    from SurgicalAICore.mrml.scene import new_scene
    from SurgicalAICore.mrml.bundle import save_scene_bundle

    out = Path(out_dir).resolve()
    prepare_output(out)
    ctx = DemoContext(out_dir=out, scene=new_scene(), device=device, quick=quick)
    seconds: Dict[str, float] = {}
    for title, module_name in STEPS:
        ctx.say(f"== {title}")
        start = time.perf_counter()
        importlib.import_module(module_name).run_demo_step(ctx)
        seconds[title] = time.perf_counter() - start
    mrb = save_scene_bundle(ctx.scene, out / "scene.mrb")
    ctx.file("Slicer scene (open in 3D Slicer)", mrb)
    (out / "numbers.json").write_text(json.dumps(ctx.numbers, indent=2, default=str) + "\n")
    report = write_report(ctx, seconds)
    ctx.say(f"report: {report}")
    ctx.say(f"all results are in {out}")
    return ctx


def run(args) -> int:
    run_demo(args.output, device=args.device, quick=args.quick)
    return 0
