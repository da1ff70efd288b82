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
