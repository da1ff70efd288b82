"""Show results in Slicer's slice views through the scene's slice composite nodes (no application needed)."""
from __future__ import annotations


def show_in_slice_views(scene, background, by_view: dict | None = None) -> int:
    """Put ``background`` in every slice view, or ``by_view[layout name]`` where given (e.g. depth in
    "Yellow"); returns how many views were set (0 headless, where the scene has no views)."""
    count = 0
    for i in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode")):
        composite = scene.GetNthNodeByClass(i, "vtkMRMLSliceCompositeNode")
        node = (by_view or {}).get(composite.GetLayoutName(), background)
        if node is not None:
            composite.SetBackgroundVolumeID(node.GetID())
            count += 1
    return count
