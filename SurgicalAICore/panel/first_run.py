"""The first-run step every panel goes through before it builds: dependencies present, or installed now.

Qt-free: the Slicer face passes Slicer's confirm and pip functions, and shows ``message`` in its place-holder
until ``ready``. Nothing heavy is imported before the dependencies are confirmed; after an install the
packages are imported once, so the panel builds without a restart, or says plainly that one is needed.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable

from SurgicalAICore.panel.jobs import error_message

HEAVY_MODULES = ("torch", "monai", "cv2", "scipy")


class DependencyGate:
    def __init__(self, missing: Callable[[], list[str]] | None = None, modules=HEAVY_MODULES):
        from SurgicalAICore.dependencies import missing_requirements

        self._missing = missing or missing_requirements
        self.modules = modules
        self.ready = False
        self.restart_needed = False
        self.message = ""

    def check(self) -> bool:
        """Ready when every requirement is installed and compatible (no install offered)."""
        needed = self._missing()
        self.ready = not needed
        self.message = "" if self.ready else ("Python packages still needed: " + ", ".join(needed)
                                              + ". Press 'Install dependencies' (once; needs internet).")
        return self.ready

    def install(self, confirm, pip_install, install_torch=None) -> bool:
        """Offer to install what is missing; True when the panel can be built now."""
        from SurgicalAICore.dependencies import ensure_dependencies, install_torch_from_extension

        try:
            done = ensure_dependencies(confirm, pip_install, install_torch or install_torch_from_extension,
                                       self._missing)
        except Exception as error:  # pip or the PyTorch extension failed: one line, the panel stays safe
            self.message = f"Installing Python packages failed: {error_message(error).splitlines()[0]}"
            return False
        if not done:
            self.check()
            return False
        importlib.invalidate_caches()
        try:
            for name in self.modules:
                importlib.import_module(name)
        except Exception as error:  # e.g. a replaced binary package already loaded in this process
            self.restart_needed = True
            self.message = (f"The packages are installed, but {error_message(error).splitlines()[0]} in this "
                            "session: restart 3D Slicer to use this module.")
            return False
        self.ready, self.message = True, ""
        return True
