"""The Python packages the extension needs inside 3D Slicer, and which of them are missing.

Slicer ships numpy, VTK and SimpleITK; PyTorch comes from Slicer's PyTorch extension (it picks the
build that fits the machine's GPU). The rest is pip-installed into Slicer's Python on first use, at
the versions ``pyproject.toml`` pins for the headless package (a test keeps the two in step).
"""
from __future__ import annotations

import importlib.util
from typing import Callable, Dict, List, Optional

# import name -> pip requirement
SLICER_REQUIREMENTS: Dict[str, str] = {
    "monai": "monai==1.6.1",
    "cv2": "opencv-python-headless==5.0.0.93",
    "scipy": "scipy==1.17.1",
    "tqdm": "tqdm==4.70.1",
    "matplotlib": "matplotlib==3.11.2",
    "pyigtl": "pyigtl==0.3.4",
}


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def missing_requirements(importable: Optional[Callable[[str], bool]] = None) -> List[str]:
    """pip requirements of the packages that cannot be imported (torch is reported as ``torch``)."""
    check = importable or _importable
    missing = [] if check("torch") else ["torch"]
    return missing + [spec for name, spec in SLICER_REQUIREMENTS.items() if not check(name)]


def install_torch_from_extension() -> bool:
    """PyTorch through Slicer's PyTorch extension, which picks the build for the machine's GPU."""
    try:
        import PyTorchUtils
    except ImportError:
        raise RuntimeError("Install the 'PyTorch' extension from the Extensions Manager first.") from None
    return PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False) is not None


def ensure_dependencies(confirm: Callable[[str], bool], pip_install: Callable[[list[str]], None],
                        install_torch: Callable[[], bool] = install_torch_from_extension,
                        importable: Optional[Callable[[str], bool]] = None) -> bool:
    """True when everything imports, installing what is missing if ``confirm`` (the user) agrees.

    The Slicer faces pass ``slicer.util.confirmOkCancelDisplay`` and ``slicer.util.pip_install``; nothing
    here needs the application, so both modules share it and it is tested headless."""
    missing = missing_requirements(importable)
    if not missing:
        return True
    if not confirm("SlicerSurgicalAI needs these Python packages, which are not installed yet:\n\n"
                   + "\n".join(missing) + "\n\nInstall them now? (a few minutes; needs internet once)"):
        return False
    if "torch" in missing and not install_torch():
        return False
    others = [spec for spec in missing if spec != "torch"]
    if others:
        pip_install(others)
    return not missing_requirements(importable)
