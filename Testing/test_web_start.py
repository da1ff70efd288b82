"""What the server's start is made of: ``surgicalai web`` imports only its own command (not torch, which
the other commands' parsers pull in), and building the page with one render per layout
(``surgicalai.web.page_build.one_render``) gives the same page and state as trame's render on every
closing widget."""
from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid

import pytest

pytest.importorskip("trame_slicer")


def build(defer: bool):
    from trame.app import get_server
    from trame.ui.vuetify3 import SinglePageLayout
    from trame.widgets import html
    from trame.widgets import vuetify3 as v3

    from surgicalai.web.page_build import one_render

    server = get_server(f"page-{uuid.uuid4().hex}", client_type="vue3")
    started = time.perf_counter()
    with one_render() if defer else _nothing(), SinglePageLayout(server) as layout, layout.content:
        for i in range(6):  # nested cards with state defaults at every depth, as the segment editor has
            with v3.VCard(id=f"card-{i}"), v3.VCardText(), html.Div(classes="d-flex"):
                v3.VSelect(items=(f"items_{i}", [1, 2]), v_model=(f"value_{i}", 1), density="compact")
                with html.Div(v_if=(f"show_{i}", True)), html.Div(), html.Div():
                    v3.VCheckbox(v_model=(f"check_{i}", False), label="x")
                    html.Span(f"{{{{ value_{i} }}}}")
    seconds = time.perf_counter() - started
    state = {k: v for k, v in server.state.initial.items() if not k.startswith("trame__")}
    return re.sub(r"`w\d+-", "`w-", layout.html), state, seconds  # widget keys count up per process


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *_):
        return False


def test_one_render_per_layout_gives_the_same_page_and_state():
    from trame_client.widgets.core import AbstractElement

    original = AbstractElement.__exit__
    page, state, slow = build(defer=False)
    page_fast, state_fast, fast = build(defer=True)
    assert AbstractElement.__exit__ is original  # restored after the build
    assert page_fast == page and state_fast == state
    assert state["value_5"] == 1 and state["show_0"] is True  # the defaults reached the state
    print(f"nested page built in {fast * 1000:.0f} ms instead of {slow * 1000:.0f} ms")


@pytest.mark.parametrize(("argv", "shown"), [(["web", "--help"], "--max-upload-mb"), (["--help"], "register")])
def test_help_parses_without_importing_torch(argv, shown):
    """``surgicalai web`` starts, and ``surgicalai --help`` (every command's parser) answers, without torch,
    MONAI or VTK (the register parser's start-pose list once imported the whole search: 9 s for a help)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    code = ("import sys; from surgicalai.cli import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            "print('heavy:', sorted(m for m in ('torch', 'monai', 'vtk') if m in sys.modules))")
    env = {"PYTHONPATH": f"{root}:{root / 'SegmentationAI'}:{root / 'SurgicalDepth'}", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root,
                         timeout=120, check=True).stdout
    assert shown in out and "heavy: []" in out, out


def test_the_first_page_does_not_wait_for_torch(tmp_path):
    """The app built and its first state flushed (what happens before the first page) import neither torch
    nor the depth stack: a change handler that did (the model summary) cost 10 s of start on this machine."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    code = ("import sys\n"
            "from surgicalai.web.app import SurgicalAIWeb\n"
            "from surgicalai.web.security import DataRoot\n"
            f"app = SurgicalAIWeb(DataRoot.of({str(tmp_path)!r}))\n"
            "app.state.ready()\n"
            "print('volume:', app.segmentation.panel.params.get('inputVolume').GetName())\n"
            "print('heavy:', sorted(m for m in ('torch', 'monai', 'SurgicalDepthLib') if m in sys.modules))")
    env = {"PYTHONPATH": f"{root}:{root / 'SegmentationAI'}:{root / 'SurgicalDepth'}", "PATH": "/usr/bin:/bin",
           "VTK_DEFAULT_OPENGL_WINDOW": "vtkEGLRenderWindow", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root,
                         timeout=300, check=True).stdout
    assert "volume: Sample CT" in out and "heavy: []" in out, out


def test_the_view_in_use_renders_first():
    """A scroll in one view also asks the others for frames; theirs are queued behind the used view's."""
    import asyncio

    from surgicalai.web.views import FocusedViewFirst, InteractionFocus, follow_focus

    asked: list[str] = []

    class Adapter:  # the two calls the strategy makes of trame-rca's RcaViewAdapter
        def __init__(self, name):
            self.name = name

        def schedule_render(self):
            asked.append(self.name)

        def on_interaction(self, _origin, _event):
            asked.append(f"input {self.name}")

    focus = InteractionFocus()
    views = {"slice": object(), "3d": object()}
    adapters = {name: Adapter(name) for name in views}
    strategies = {}
    for name, view in views.items():
        strategies[name] = FocusedViewFirst(adapters[name], focus)
        strategies[name].set_abstract_view(view)
        follow_focus(adapters[name], view, focus)

    async def scroll():
        adapters["slice"].on_interaction("page", {"type": "MouseWheelForward"})
        strategies["3d"].schedule_render()  # the scene's observers may ask the 3-D view first
        strategies["slice"].schedule_render()
        assert asked == ["input slice", "slice"]
        await asyncio.sleep(0)
        assert asked == ["input slice", "slice", "3d"]
        focus.until = 0.0  # input is over: every view is asked at once again
        strategies["3d"].schedule_render()
        assert asked[-1] == "3d" and len(asked) == 4

    asyncio.run(scroll())
