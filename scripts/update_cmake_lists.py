"""Rewrite the Python file lists of the modules' and the Core's CMakeLists.txt from the tree.

Run after adding or moving a .py file: ``python scripts/update_cmake_lists.py`` (a test checks the lists).
"""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rewrite(folder: Path, first: list) -> None:
    cmake = folder / "CMakeLists.txt"
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.py") if "Testing" not in p.parts)
    files = first + [f for f in files if f not in first]
    block = "set(MODULE_PYTHON_SCRIPTS\n" + "".join(f"  {f}\n" for f in files) + "  )"
    cmake.write_text(re.sub(r"set\(MODULE_PYTHON_SCRIPTS\n.*?\n  \)", block, cmake.read_text(), flags=re.S))


if __name__ == "__main__":
    for module in ("SegmentationAI", "SurgicalDepth"):
        rewrite(ROOT / module, [f"{module}.py"])
    rewrite(ROOT / "SurgicalAICore", [])
