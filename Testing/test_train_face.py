"""The Train section's Qt glue: every widget it uses exists in its .ui, and it holds no processing
(it imports only Qt/Slicer and the Lib, and never touches torch or MONAI itself)."""
from __future__ import annotations

import ast
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "SegmentationAI"
FACE = ROOT / "SegmentationAIWidgets" / "train_section.py"
UI = ROOT / "Resources" / "UI" / "SegmentationAITrain.ui"


def test_widgets_used_exist_in_the_ui():
    tree = ast.parse(FACE.read_text())
    used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Attribute)
            and n.value.attr == "ui" and isinstance(n.value.value, ast.Name) and n.value.value.id == "self"}
    declared = {w.get("name") for w in ET.parse(UI).iter("widget")}
    assert used and not used - declared, sorted(used - declared)


def test_face_imports_only_qt_slicer_and_the_lib():
    tree = ast.parse(FACE.read_text())
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            modules.add(node.module.split(".")[0])
    assert modules <= {"os", "qt", "ctk", "slicer", "vtk", "SegmentationAILib", "SurgicalAICore"}, modules
    classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
    assert classes == ["TrainSection"]
    init = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    assert [a.arg for a in init.args.args] == ["self", "parentLayout", "index", "otherJobRunning"]


def test_lib_names_the_face_uses_exist():
    from SegmentationAILib.train_panel import TrainPanel

    assert all(hasattr(TrainPanel, m) for m in ("add_case", "remove_case", "case_labels", "start", "stop", "poll",
                                                 "running", "shutdown", "curves_path"))
