"""The architecture rule, checked: Libs are Qt-free and never reach for the app's global scene;
every Lib and face file is listed in its module's CMakeLists so the Slicer build ships it."""
import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = ["SegmentationAI", "SurgicalDepth"]
FORBIDDEN_IMPORTS = {"qt", "ctk", "PythonQt", "slicer.ScriptedLoadableModule", "slicer.parameterNodeWrapper"}
FORBIDDEN_ATTRIBUTES = {"mrmlScene", "app", "modules", "mainWindow"}


def lib_files(module):
    return sorted((ROOT / module / f"{module}Lib").rglob("*.py"))


def imported_names(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


@pytest.mark.parametrize("module", MODULES)
def test_libs_do_not_import_qt_or_the_app(module):
    offenders = []
    for path in lib_files(module):
        tree = ast.parse(path.read_text(), str(path))
        for name in imported_names(tree):
            if name in FORBIDDEN_IMPORTS or name.split(".")[0] in {"qt", "ctk"}:
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_ATTRIBUTES \
                    and isinstance(node.value, ast.Name) and node.value.id == "slicer":
                offenders.append(f"{path.relative_to(ROOT)} uses slicer.{node.attr}")
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("module", MODULES)
def test_cmakelists_lists_every_python_file(module):
    cmake = (ROOT / module / "CMakeLists.txt").read_text()
    listed = set(re.findall(r"([\w/]+\.py)", cmake))
    wanted = {str(p.relative_to(ROOT / module)) for p in (ROOT / module).rglob("*.py") if "Testing" not in p.parts}
    missing = sorted(wanted - listed)
    assert not missing, f"{module}/CMakeLists.txt does not list: {missing}"
    resources = {str(p.relative_to(ROOT / module)) for p in (ROOT / module / "Resources").rglob("*")
                 if p.suffix in (".ui", ".png")}
    listed_resources = {r.replace("${MODULE_NAME}", module) for r in re.findall(r"(Resources/[\w/${}]+\.(?:ui|png))", cmake)}
    assert resources <= listed_resources, f"{module}/CMakeLists.txt does not list: {sorted(resources - listed_resources)}"
    stale = sorted(p for p in listed if not (ROOT / module / p).exists())
    assert not stale, f"{module}/CMakeLists.txt lists files that do not exist: {stale}"


@pytest.mark.parametrize("module", MODULES)
def test_face_resources_exist(module):
    assert (ROOT / module / "Resources" / "UI" / f"{module}.ui").is_file()
    assert (ROOT / module / "Resources" / "Icons" / f"{module}.png").is_file()
    assert (ROOT / module / f"{module}.py").is_file()
