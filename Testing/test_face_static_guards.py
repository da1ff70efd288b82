"""Static guards that keep the Slicer faces' first-day defects from coming back (issue 13):
helper files loaded as modules, heavy imports before the dependencies are confirmed, widgets that do not
exist or are of the wrong class for what they bind, buttons left pressed after a failure, the GUI thread
pumped by processEvents, timers that outlive their panel; plus the sequence source's thread safety."""
import ast
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = ["SegmentationAI", "SurgicalDepth"]
HEAVY = {"torch", "monai", "cv2", "scipy", "matplotlib", "pyigtl", "tqdm", "transformers", "SimpleITK"}
BUTTON_STATE = {"text", "enabled", "checked", "checkable"}


def face_files(module):
    return [ROOT / module / f"{module}.py", *sorted((ROOT / module / f"{module}Widgets").glob("*.py"))]


def ui_classes(module):
    classes = {}
    for ui in (ROOT / module / "Resources" / "UI").glob("*.ui"):
        for widget in ET.parse(ui).getroot().iter("widget"):
            classes[widget.get("name")] = widget.get("class")
    return classes


def outside_tests(tree):
    """Nodes of the file that are not inside a ``*Test`` class (self-tests run after the dependency check)."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name.endswith("Test"):
            skip.update(id(n) for n in ast.walk(node))
    return [n for n in ast.walk(tree) if id(n) not in skip]


@pytest.mark.parametrize("module", MODULES)
def test_only_the_module_file_sits_beside_it(module):
    """Slicer loads every .py in a module folder as a module at start-up; helpers live in sub-packages."""
    assert sorted(p.name for p in (ROOT / module).glob("*.py")) == [f"{module}.py"]
    assert not list((ROOT / "SurgicalAICore").glob("SurgicalAICore.py"))


@pytest.mark.parametrize("module", MODULES)
def test_no_heavy_import_in_the_faces(module):
    offenders = []
    for path in face_files(module):
        for node in outside_tests(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.name}:{node.lineno} imports {n}" for n in names if n.split(".")[0] in HEAVY]
    assert not offenders, offenders


def test_what_a_face_imports_before_building_pulls_nothing_heavy():
    """The modules the faces import before and while building the panel do not import torch & co."""
    code = ("import sys\n"
            "import SurgicalAICore.panel.first_run, SurgicalAICore.panel.widget_binding, SurgicalAICore.sample_data\n"
            "import SegmentationAILib.panel, SegmentationAILib.train_panel\n"
            "import SurgicalDepthLib.panel.depth_panel, SurgicalDepthLib.panel.registration_panel\n"
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({sorted(HEAVY)!r})))\n")
    env = {"PYTHONPATH": f"{ROOT}:{ROOT / 'SegmentationAI'}:{ROOT / 'SurgicalDepth'}", "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True,
                         encoding="utf-8", errors="replace", env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]", f"imported before the dependencies are confirmed: {run.stdout}"


def test_init_method_choices_match_the_registration_table():
    from SurgicalDepthLib.panel.registration_panel import InitMethod
    from SurgicalDepthLib.registration.start_poses import INITIALISER_LABELS

    assert [m.value for m in InitMethod] == list(INITIALISER_LABELS)


def _bindings(tree):
    """(parameter name, widget name) of every ``...bind("name", self.ui.widget...)`` call."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "bind" and len(node.args) >= 2:
            name, widget = node.args[0], node.args[1]
            if isinstance(name, ast.Constant) and isinstance(widget, ast.Attribute):
                found.append((name.value, widget.attr))
        if isinstance(node, ast.Tuple) and len(node.elts) == 2 and isinstance(node.elts[0], ast.Constant) \
                and isinstance(node.elts[1], ast.Attribute) and getattr(node.elts[1].value, "attr", "") == "ui":
            found.append((node.elts[0].value, node.elts[1].attr))
    return found


WIDGETS_FOR = {"node": {"qMRMLNodeComboBox"}, bool: {"QCheckBox"}, int: {"QSpinBox"},
               float: {"QDoubleSpinBox", "ctkDoubleSpinBox", "ctkSliderWidget"},
               str: {"ctkPathLineEdit", "QLineEdit"}, "enum": {"QComboBox"}}


def _params(module):
    import enum

    if module == "SegmentationAI":
        from SegmentationAILib.panel import SEGMENT_PARAMS
        from SegmentationAILib.train_panel import TRAIN_PARAMS
        params = SEGMENT_PARAMS + TRAIN_PARAMS
    else:
        from SurgicalDepthLib.panel.depth_panel import DEPTH_PARAMS
        from SurgicalDepthLib.panel.registration_panel import REGISTRATION_PARAMS
        params = DEPTH_PARAMS + REGISTRATION_PARAMS
    return {p.name: ("enum" if isinstance(p.kind, type) and issubclass(p.kind, enum.Enum) else p.kind) for p in params}


@pytest.mark.parametrize("module", MODULES)
def test_every_ui_widget_exists_and_bound_widgets_have_the_right_class(module):
    classes, params = ui_classes(module), _params(module)
    used, wrong = set(), []
    for path in face_files(module):
        tree = ast.parse(path.read_text())
        used |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and getattr(n.value, "attr", "") == "ui"
                 and isinstance(n.value.value, ast.Name) and n.value.value.id == "self"}
        for name, widget in _bindings(tree):
            if name in params and classes.get(widget) not in WIDGETS_FOR[params[name]]:
                wrong.append(f"{name} ({params[name]}) bound to {widget} ({classes.get(widget)})")
    assert used, "no widget use found: the check would be empty"
    assert not sorted(used - set(classes)), f"widgets missing from the .ui files: {sorted(used - set(classes))}"
    assert not wrong, wrong


def _functions(tree):
    return [n for n in outside_tests(tree) if isinstance(n, ast.FunctionDef)]


@pytest.mark.parametrize("module", MODULES)
def test_buttons_follow_the_state_and_are_restored_in_finally(module):
    """Button state is written only by updateView (derived from the panel's state); a handler with a try
    brings the view back in its finally; no re-raising tryWithErrorDisplay, no toggle buttons, no pumped loop."""
    offenders = []
    for path in face_files(module):
        tree = ast.parse(path.read_text())
        for function in _functions(tree):
            for node in ast.walk(function):
                if isinstance(node, ast.Assign):
                    for target in node.targets:
                        if isinstance(target, ast.Attribute) and target.attr in BUTTON_STATE \
                                and getattr(target.value, "attr", "").endswith("Button") \
                                and function.name not in ("updateView", "onInstall"):
                            offenders.append(f"{path.name}:{node.lineno} sets a button outside updateView")
                if isinstance(node, ast.Try) and function.name.startswith(("on", "act", "_act")):
                    calls = {getattr(c.func, "attr", "") for f in node.finalbody for c in ast.walk(f)
                             if isinstance(c, ast.Call)}
                    if "updateView" not in calls:
                        offenders.append(f"{path.name}:{node.lineno} {function.name}: no updateView in finally")
        for node in outside_tests(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("tryWithErrorDisplay", "processEvents", "toggled"):
                offenders.append(f"{path.name}:{node.lineno} uses {node.attr}")
    assert not offenders, offenders


@pytest.mark.parametrize("module", MODULES)
def test_every_timer_stops_in_cleanup_and_on_scene_close(module):
    offenders = []
    for path in face_files(module):
        tree = ast.parse(path.read_text())
        for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and not n.name.endswith("Test")):
            text = ast.unparse(cls)
            if "QTimer()" not in text:
                continue
            methods = {f.name: ast.unparse(f) for f in cls.body if isinstance(f, ast.FunctionDef)}
            for name in ("cleanup", "shutdown" if "shutdown" in methods else "onSceneStartClose"):
                if "timer.stop()" not in methods.get(name, ""):
                    offenders.append(f"{path.name}: {cls.name}.{name} does not stop its timer")
    assert not offenders, offenders


def test_core_cmakelists_lists_every_file():
    import re

    cmake = (ROOT / "SurgicalAICore" / "CMakeLists.txt").read_text()
    listed = set(re.findall(r"([\w/]+\.py)", cmake))
    wanted = {str(p.relative_to(ROOT / "SurgicalAICore")) for p in (ROOT / "SurgicalAICore").rglob("*.py")}
    assert wanted == listed, sorted(wanted ^ listed)


def test_sequence_source_reads_the_scene_only_when_opened(scene):
    """A feeder thread iterates the source: after opening, the MRML sequence is not read again."""
    import slicer

    from SurgicalDepthLib.depth.scene import frame_volume
    from SurgicalDepthLib.video.sources import open_source

    sequence = scene.AddNode(slicer.vtkMRMLSequenceNode())
    for i in range(3):
        sequence.SetDataNodeAtValue(frame_volume(np.full((8, 10, 3), 10 * i, np.uint8), f"f{i}"), str(i / 10))
    source = open_source(sequence)
    sequence.RemoveAllDataNodes()  # were the thread to read the nodes, it would find none
    frames = list(source)
    assert [f.rgb[0, 0, 0] for f in frames] == [0, 10, 20] and [f.timestamp_s for f in frames] == [0.0, 0.1, 0.2]


def test_extension_metadata_points_at_files_that_exist():
    """The icon and screenshot URLs in the top CMakeLists name files of this repository; LICENSE is there."""
    import re

    cmake = (ROOT / "CMakeLists.txt").read_text()
    urls = re.findall(r'set\(EXTENSION_(?:ICONURL|SCREENSHOTURLS) "([^"]+)"\)', cmake)
    assert len(urls) == 2
    for url in urls:
        for single in url.split():
            assert (ROOT / single.split("/main/", 1)[1]).is_file(), single
    assert "Apache License" in (ROOT / "LICENSE").read_text()
