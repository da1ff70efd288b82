"""The Python packages the extension needs inside 3D Slicer, and which of them are missing or too old.

Slicer ships numpy, VTK and SimpleITK; PyTorch comes from Slicer's PyTorch extension (it picks the
build that fits the machine's GPU). The rest is listed, as version ranges, in ``Resources/requirements.txt``
and pip-installed into Slicer's Python on first use when not installed *and compatible* (checked with
``packaging``, as SlicerNNUnet's InstallLogic does). Nothing here needs the application, so both modules
share it and it is tested headless.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Callable
from pathlib import Path

# Slicer release -> the Python it ships (the oldest listed is the oldest supported; README says so)
SUPPORTED_SLICER_PYTHONS: dict[str, str] = {"5.10": "3.12"}


def _packaging():
    try:
        from packaging.requirements import Requirement
        from packaging.version import Version
    except ImportError:  # pip always carries its own copy
        from pip._vendor.packaging.requirements import Requirement
        from pip._vendor.packaging.version import Version
    return Requirement, Version


def requirements_path() -> Path:
    from SurgicalAICore.resources import resources_dir

    return resources_dir() / "requirements.txt"


def slicer_requirements(path: Path | None = None) -> list[str]:
    """The requirement lines of ``Resources/requirements.txt`` (comments and blanks dropped)."""
    lines = (path or requirements_path()).read_text().splitlines()
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


def _installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def satisfied(requirement: str, installed: Callable[[str], str | None] = _installed_version) -> bool:
    """True when the requirement's distribution is installed at a version inside its range."""
    Requirement, Version = _packaging()
    req = Requirement(requirement)
    version = installed(req.name)
    return version is not None and req.specifier.contains(Version(version), prereleases=True)


def _torch_importable() -> bool:
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def missing_requirements(installed: Callable[[str], str | None] = _installed_version,
                         torch_present: Callable[[], bool] = _torch_importable) -> list[str]:
    """Requirements not installed-and-compatible (torch is reported as ``torch``)."""
    missing = [] if torch_present() else ["torch"]
    return missing + [spec for spec in slicer_requirements() if not satisfied(spec, installed)]


def install_torch_from_extension() -> bool:
    """PyTorch through Slicer's PyTorch extension, which picks the build for the machine's GPU."""
    try:
        import PyTorchUtils
    except ImportError:
        raise RuntimeError("Install the 'PyTorch' extension from the Extensions Manager first.") from None
    return PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False) is not None


def ensure_dependencies(confirm: Callable[[str], bool], pip_install: Callable[[list[str]], None],
                        install_torch: Callable[[], bool] = install_torch_from_extension,
                        missing: Callable[[], list[str]] = missing_requirements) -> bool:
    """True when everything is installed and compatible, installing what is missing if ``confirm`` (the
    user) agrees. The Slicer faces pass ``slicer.util.confirmOkCancelDisplay`` and ``slicer.util.pip_install``."""
    needed = missing()
    if not needed:
        return True
    if not confirm("SlicerSurgicalAI needs these Python packages, which are not installed (or too old):\n\n"
                   + "\n".join(needed) + "\n\nInstall them now? (a few minutes; needs internet once)"):
        return False
    if "torch" in needed and not install_torch():
        return False
    others = [spec for spec in needed if spec != "torch"]
    if others:
        pip_install(others)
    return not missing()
