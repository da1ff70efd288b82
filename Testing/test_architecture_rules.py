"""The architecture, checked.

- The Core and the Libs are Qt-free and never reach for the app's global scene.
- The Core imports no Lib; the two Libs never import each other; neither face imports the other's files.
- No import cycle anywhere in the Core, the Libs and the console package (a graph over every import
  statement, including those inside functions and the lazy re-export tables of package ``__init__``s).
- Slicer loads every ``.py`` at the top of a module folder as a module: only ``<Module>.py`` sits there.
- Every Python file of a module folder and of the Core is listed in its CMakeLists so the Slicer build ships it.
"""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = ["SegmentationAI", "SurgicalDepth"]
FORBIDDEN_IMPORTS = {"qt", "ctk", "PythonQt", "slicer.ScriptedLoadableModule", "slicer.parameterNodeWrapper"}
FORBIDDEN_ATTRIBUTES = {"mrmlScene", "app", "modules", "mainWindow"}
PACKAGES = {  # importable name -> folder
    "SurgicalAICore": ROOT / "SurgicalAICore",
    "SegmentationAILib": ROOT / "SegmentationAI" / "SegmentationAILib",
    "SurgicalDepthLib": ROOT / "SurgicalDepth" / "SurgicalDepthLib",
    "surgicalai": ROOT / "surgicalai",
}


def package_files(name):
    return sorted(PACKAGES[name].rglob("*.py"))


def lib_files(module):
    return package_files(f"{module}Lib")


def module_name(path: Path) -> str:
    for name, folder in PACKAGES.items():
        if folder in path.parents:
            parts = path.relative_to(folder).with_suffix("").parts
            return ".".join([name, *[p for p in parts if p != "__init__"]])
    raise ValueError(path)


def imported_names(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def import_targets(tree, package: str):
    """Names an import statement makes Python load: ``from pkg import mod`` loads ``pkg.mod`` (and the
    package itself, whose ``__init__`` here only holds a lazy table); relative imports resolved."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            yield from (f"{base}.{alias.name}" for alias in node.names)


def lazy_export_modules(tree, package: str):
    """Modules named in a ``lazy_exports(__name__, {...})`` table: edges the package's __init__ makes."""
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", None) == "lazy_exports"
            and len(node.args) == 2
            and isinstance(node.args[1], ast.Dict)
        ):
            for key in node.args[1].keys:
                yield f"{package}.{key.value}"


def known_modules():
    return {module_name(p): p for name in PACKAGES for p in package_files(name)}


def resolve(name: str, known) -> str | None:
    """The project module an imported name refers to (``pkg.mod.func`` -> ``pkg.mod``)."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph():
    known = known_modules()
    graph = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = {resolve(n, known) for n in import_targets(tree, package)}
        if path.name == "__init__.py":
            targets |= set(lazy_export_modules(tree, name))
        graph[name] = {t for t in targets if t and t != name}
    return graph


def find_cycle(graph):
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


@pytest.mark.parametrize("package", ["SurgicalAICore", "SegmentationAILib", "SurgicalDepthLib"])
def test_core_and_libs_do_not_import_qt_or_the_app(package):
    offenders = []
    for path in package_files(package):
        tree = ast.parse(path.read_text(), str(path))
        for name in imported_names(tree):
            if name in FORBIDDEN_IMPORTS or name.split(".")[0] in {"qt", "ctk"}:
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in FORBIDDEN_ATTRIBUTES
                and isinstance(node.value, ast.Name)
                and node.value.id == "slicer"
            ):
                offenders.append(f"{path.relative_to(ROOT)} uses slicer.{node.attr}")
    assert not offenders, "\n".join(offenders)


def _imports_of(paths):
    for path in paths:
        for name in imported_names(ast.parse(path.read_text(), str(path))):
            yield path, name


def test_core_imports_no_lib_and_the_libs_not_each_other():
    rules = {
        "SurgicalAICore": {"SegmentationAILib", "SurgicalDepthLib", "surgicalai"},
        "SegmentationAILib": {"SurgicalDepthLib", "surgicalai"},
        "SurgicalDepthLib": {"SegmentationAILib", "surgicalai"},
    }
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for package, banned in rules.items()
        for path, name in _imports_of(package_files(package))
        if name.split(".")[0] in banned
    ]
    assert not offenders, "\n".join(offenders)


def test_faces_do_not_import_the_other_module():
    other = {"SegmentationAI": ("SurgicalDepth",), "SurgicalDepth": ("SegmentationAI",)}
    offenders = []
    for module, banned in other.items():
        faces = [p for p in (ROOT / module).rglob("*.py") if f"{module}Lib" not in p.parts and "Testing" not in p.parts]
        offenders += [
            f"{path.relative_to(ROOT)} imports {name}"
            for path, name in _imports_of(faces)
            if name.split(".")[0].startswith(banned)
        ]
    assert not offenders, "\n".join(offenders)


def test_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 80 and sum(map(len, graph.values())) > 150, "the graph looks empty: the check would be vacuous"
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_check_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("module", MODULES)
def test_only_the_module_file_at_the_top_of_a_module_folder(module):
    top = sorted(p.name for p in (ROOT / module).glob("*.py"))
    assert top == [f"{module}.py"], f"Slicer would load these as modules: {top}"


def _cmake_listed(cmake: str) -> set:
    return set(re.findall(r"([\w/]+\.py)", cmake))


@pytest.mark.parametrize("module", MODULES)
def test_cmakelists_lists_every_python_file(module):
    cmake = (ROOT / module / "CMakeLists.txt").read_text()
    listed = _cmake_listed(cmake)
    wanted = {str(p.relative_to(ROOT / module)) for p in (ROOT / module).rglob("*.py") if "Testing" not in p.parts}
    missing = sorted(wanted - listed)
    assert not missing, f"{module}/CMakeLists.txt does not list: {missing}"
    resources = {
        str(p.relative_to(ROOT / module))
        for p in (ROOT / module / "Resources").rglob("*")
        if p.suffix in (".ui", ".png")
    }
    listed_resources = {
        r.replace("${MODULE_NAME}", module) for r in re.findall(r"(Resources/[\w/${}]+\.(?:ui|png))", cmake)
    }
    assert resources <= listed_resources, (
        f"{module}/CMakeLists.txt does not list: {sorted(resources - listed_resources)}"
    )
    stale = sorted(p for p in listed if not (ROOT / module / p).exists())
    assert not stale, f"{module}/CMakeLists.txt lists files that do not exist: {stale}"


def test_core_cmakelists_lists_every_python_file():
    core = ROOT / "SurgicalAICore"
    listed = _cmake_listed((core / "CMakeLists.txt").read_text())
    wanted = {str(p.relative_to(core)) for p in core.rglob("*.py")}
    assert listed == wanted, f"missing: {sorted(wanted - listed)}; stale: {sorted(listed - wanted)}"
    assert "add_subdirectory(SurgicalAICore)" in (ROOT / "CMakeLists.txt").read_text()


@pytest.mark.parametrize("module", MODULES)
def test_face_resources_exist(module):
    assert (ROOT / module / "Resources" / "UI" / f"{module}.ui").is_file()
    assert (ROOT / module / "Resources" / "Icons" / f"{module}.png").is_file()
    assert (ROOT / module / f"{module}.py").is_file()


def test_pyproject_packages_every_package():
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    wanted = {module_name(p) for name in PACKAGES for p in package_files(name) if p.name == "__init__.py"}
    assert wanted <= listed, f"pyproject.toml does not package: {sorted(wanted - listed)}"
    assert {k: str(ROOT / v) for k, v in config["package-dir"].items()} == {k: str(v) for k, v in PACKAGES.items()}
