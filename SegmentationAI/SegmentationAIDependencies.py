"""Installs what SegmentationAI and SurgicalDepth need into Slicer's Python, asking first.

Slicer face only (needs the application): PyTorch through the PyTorch extension's installer,
everything else with ``slicer.util.pip_install``; the list comes from the Qt-free Lib.
"""
import slicer


def ensureDependencies():
    """True when everything imports (installing what is missing if the user agrees)."""
    from SegmentationAILib.dependencies import missing_requirements

    missing = missing_requirements()
    if not missing:
        return True
    if not slicer.util.confirmOkCancelDisplay(
            "SlicerSurgicalAI needs these Python packages, which are not installed yet:\n\n"
            + "\n".join(missing) + "\n\nInstall them now? (a few minutes; needs internet once)"):
        return False
    with _busy():
        if "torch" in missing:
            try:
                import PyTorchUtils
            except ImportError:
                slicer.util.errorDisplay("Install the 'PyTorch' extension from the Extensions Manager first.")
                return False
            if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False) is None:
                return False
        others = [spec for spec in missing if spec != "torch"]
        if others:
            slicer.util.pip_install(others)
    return not missing_requirements()


class _busy:
    def __enter__(self):
        import qt
        qt.QApplication.setOverrideCursor(qt.Qt.WaitCursor)

    def __exit__(self, *exc):
        import qt
        qt.QApplication.restoreOverrideCursor()
