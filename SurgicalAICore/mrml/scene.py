"""A headless MRML scene with the module logics the extension relies on registered."""
from __future__ import annotations


def new_scene():
    """A fresh ``vtkMRMLScene`` (slicer-core) with the Sequences logic registered, so sequence
    browser nodes work as in the desktop app."""
    import slicer

    scene = slicer.vtkMRMLScene()
    sequences = slicer.vtkSlicerSequencesLogic()
    sequences.SetMRMLScene(scene)
    scene._surgicalai_logics = [sequences]  # keep the logic alive as long as the scene
    return scene
