"""Save a whole MRML scene as a Slicer data bundle (``.mrb``) and load one back, headless.

Uses the scene's own writer (``vtkMRMLScene.WriteToMRB``), which gives every storable node
(volumes, segmentations, models, transforms, tables, sequences, markups) a default storage node
and writes it beside the ``.mrml`` file before zipping, as the desktop app does.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import vtk

from SurgicalAICore.atomic import atomic_file
from SurgicalAICore.errors import InputError


def save_scene_bundle(scene, path: str | Path) -> Path:
    """Write ``scene`` to ``path`` (``.mrb``) atomically; returns the path.

    Storable nodes without a storage node get a default one (the scene's writer needs it); no
    node is added or removed otherwise.
    """
    path = Path(path).resolve()
    if path.suffix.lower() != ".mrb":
        raise InputError(f"A scene bundle must end in .mrb: {path.name}")
    if not path.parent.is_dir() or not os.access(path.parent, os.W_OK):
        raise InputError(f"Cannot write the scene to {path}: the folder is missing or not writable.")
    # the bundle's inner folder is named after the file, so write under the final name in a temp folder
    with atomic_file(path, keep_name=True) as tmp:
        _ensure_storage_nodes(scene)
        url = scene.GetURL()
        root = scene.GetRootDirectory()
        try:
            with _quiet_vtk():  # the zip writer logs every file it adds
                ok = scene.WriteToMRB(str(tmp))
        finally:
            # WriteToMRB points the scene at its temporary bundle folder; restore where it was
            scene.SetURL(url)
            scene.SetRootDirectory(root)
        if not ok or not tmp.is_file():
            raise InputError(f"Saving the scene to {path} failed (see the log for the node that could not be written).")
    return path


@contextlib.contextmanager
def _quiet_vtk():
    """Send VTK's log text to a string window for the duration (errors still end up in the result)."""
    previous = vtk.vtkOutputWindow.GetInstance()
    previous.Register(None)
    sink = vtk.vtkStringOutputWindow()
    vtk.vtkOutputWindow.SetInstance(sink)
    try:
        yield sink
    finally:
        vtk.vtkOutputWindow.SetInstance(previous)
        previous.UnRegister(None)


def _ensure_storage_nodes(scene) -> None:
    nodes = scene.GetNodesByClass("vtkMRMLStorableNode")
    for n in range(nodes.GetNumberOfItems()):
        node = nodes.GetItemAsObject(n)
        if node.GetSaveWithScene() and node.GetStorageNode() is None:
            node.AddDefaultStorageNode()


def load_scene_bundle(path: str | Path, scene=None):
    """Load a ``.mrb`` into ``scene`` (a new one if None) and return the scene."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Scene bundle not found: {path}")
    if scene is None:
        from SurgicalAICore.mrml.scene import new_scene

        scene = new_scene()
    _ensure_io_manager(scene)
    with _quiet_vtk():
        ok = scene.ReadFromMRB(str(path))
    if not ok:
        raise InputError(f"Cannot read the scene bundle {path}.")
    return scene


def _ensure_io_manager(scene) -> None:
    """Reading a bundle needs a data IO manager with a cache folder (the desktop app sets one up)."""
    import slicer

    if scene.GetDataIOManager() is not None and scene.GetCacheManager() is not None:
        return
    cache = slicer.vtkCacheManager()
    cache_dir = Path(tempfile.gettempdir()) / "surgicalai-mrml-cache"
    cache_dir.mkdir(exist_ok=True)
    cache.SetRemoteCacheDirectory(str(cache_dir))
    io = slicer.vtkDataIOManager()
    io.SetCacheManager(cache)
    scene.SetCacheManager(cache)
    scene.SetDataIOManager(io)
    scene._surgicalai_io = (cache, io)  # keep them alive with the scene
