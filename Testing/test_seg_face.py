"""The Slicer face stays thin: every widget it uses exists in the .ui, and it imports no processing libraries."""
import ast
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FACE = ROOT / "SegmentationAI" / "SegmentationAI.py"
UI = ROOT / "SegmentationAI" / "Resources" / "UI" / "SegmentationAI.ui"
ALLOWED_TOP = {"slicer", "qt", "ctk", "vtk", "logging", "os", "tempfile", "SampleData", "SegmentationAILib",
               "SegmentationAIWidgets", "SurgicalAICore"}


def face_tree():
    return ast.parse(FACE.read_text(), str(FACE))


def ui_widget_names():
    return {w.get("name") for w in ET.parse(UI).getroot().iter("widget")} | \
           {w.get("name") for w in ET.parse(UI).getroot().iter("layout")}


def used_ui_names(tree):
    """Names in ``self.ui.<name>`` expressions."""
    names = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) and node.value.attr == "ui"
                and isinstance(node.value.value, ast.Name) and node.value.value.id == "self"):
            names.add(node.attr)
    return names


def test_every_widget_the_face_uses_is_in_the_ui():
    used = used_ui_names(face_tree())
    assert used, "the face uses no widgets: the check would be empty"
    missing = sorted(used - ui_widget_names())
    assert not missing, f"SegmentationAI.py uses widgets missing from SegmentationAI.ui: {missing}"


def test_ui_holds_the_panel_controls():
    names = ui_widget_names()
    for wanted in ("inputVolumeSelector", "modelComboBox", "modelFolderPathLineEdit", "deviceComboBox", "ttaCheckBox",
                   "claheCheckBox", "denoiseCheckBox", "applyButton", "progressBar", "statusLabel",
                   "outputSegmentationSelector"):
        assert wanted in names, wanted


def test_face_imports_only_slicer_qt_and_the_lib():
    offenders = []
    for node in ast.walk(face_tree()):
        modules = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module]
        offenders += [m for m in modules if m.split(".")[0] not in ALLOWED_TOP]
    assert not offenders, f"the face imports processing libraries: {offenders}"


def test_face_has_module_widget_logic_and_test_and_stays_short():
    tree = face_tree()
    classes = {c.name: c for c in tree.body if isinstance(c, ast.ClassDef)}
    assert {"SegmentationAI", "SegmentationAIWidget", "SegmentationAILogic", "SegmentationAITest"} <= set(classes)
    bases = {c: [ast.unparse(b) for b in classes[c].bases] for c in classes}
    assert "ScriptedLoadableModuleLogic" in bases["SegmentationAILogic"]
    assert "ScriptedLoadableModuleTest" in bases["SegmentationAITest"]
    for method in ast.walk(classes["SegmentationAILogic"]):
        if isinstance(method, ast.FunctionDef):
            assert method.end_lineno - method.lineno < 25, f"Logic.{method.name} is long: move the work into the Lib"
    assert len(FACE.read_text().splitlines()) < 300  # bindings, first-run gate, the self-test stories
