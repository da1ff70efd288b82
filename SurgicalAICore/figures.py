"""Headless pictures of a segmentation: 2-D overlays (matplotlib) and a 3-D surface rendering (VTK offscreen)."""
from __future__ import annotations

from pathlib import Path
from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk


def _to_ras_display(image: sitk.Image) -> np.ndarray:
    """Array [k, j, i] of the image reoriented so i runs towards patient left, j posterior, k superior."""
    oriented = sitk.DICOMOrient(image, "LPS")
    return sitk.GetArrayFromImage(oriented)  # [S, P, L]


def overlay_figure(ct: sitk.Image, labels: sitk.Image, label_info: Sequence[dict], path: str | Path,
                   view: str = "axial", window=(-160.0, 240.0), title: str = "") -> Path:
    """Three slices through the labelled region, CT in grey with coloured label outlines and fill."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    ct_a = _to_ras_display(ct).astype(np.float32)   # [k=S, j=P, i=L]
    lab_a = _to_ras_display(labels)
    spacing = sitk.DICOMOrient(ct, "LPS").GetSpacing()
    lut = np.zeros((int(max([e["value"] for e in label_info] + [1])) + 1, 4))
    for e in label_info:
        lut[int(e["value"])] = [*list(e["color"]), 0.45]
    cmap = ListedColormap(lut)
    fg = np.argwhere(lab_a > 0)
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.4), dpi=100)
    for ax, q in zip(axes, (0.3, 0.5, 0.7), strict=False):
        if view == "axial":
            k = int(np.quantile(fg[:, 0], q)) if len(fg) else ct_a.shape[0] // 2
            # columns run towards patient left, so the patient's right is on the image left (radiological)
            img, lab = ct_a[k], lab_a[k]
            aspect = spacing[1] / spacing[0]
            ax.set_title(f"axial slice {k}")
        else:
            j = int(np.quantile(fg[:, 1], q)) if len(fg) else ct_a.shape[1] // 2
            img, lab = ct_a[:, j][::-1], lab_a[:, j][::-1]  # superior at the top
            aspect = spacing[2] / spacing[0]
            ax.set_title(f"coronal slice {j}")
        ax.imshow(img, cmap="gray", vmin=window[0], vmax=window[1], aspect=aspect, interpolation="bilinear")
        ax.imshow(np.ma.masked_equal(lab, 0), cmap=cmap, vmin=0, vmax=len(lut) - 1, aspect=aspect,
                  interpolation="nearest")
        ax.axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, color=e["color"]) for e in label_info]
    fig.legend(handles, [e["name"] for e in label_info], loc="lower center", ncol=min(len(label_info), 9),
               fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.07, 1, 0.95))
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def render_segmentation_3d(segmentation_node, path: str | Path, size=(900, 900),
                           view: str = "anterior") -> Path:
    """PNG of the closed surfaces of a segmentation node, each in its segment colour (offscreen VTK)."""
    import vtk

    segmentation = segmentation_node.GetSegmentation()
    if not segmentation.ContainsRepresentation("Closed surface"):
        segmentation_node.CreateClosedSurfaceRepresentation()
    renderer = vtk.vtkRenderer()
    renderer.SetBackground(1.0, 1.0, 1.0)
    actors = 0
    for n in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(n)
        poly = segment.GetRepresentation("Closed surface")
        if poly is None or poly.GetNumberOfPoints() == 0:
            continue
        normals = vtk.vtkPolyDataNormals()
        normals.SetInputData(poly)
        mapper = vtk.vtkPolyDataMapper()
        mapper.SetInputConnection(normals.GetOutputPort())
        mapper.ScalarVisibilityOff()
        actor = vtk.vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetColor(*segment.GetColor())
        actor.GetProperty().SetSpecular(0.2)
        renderer.AddActor(actor)
        actors += 1
    # RAS: looking from the front (anterior, +A) towards the back, head up
    return save_offscreen_png(renderer, path, size, position=(0, 1, 0), focal_point=(0, 0, 0), view_up=(0, 0, 1),
                              zoom=1.2)


def save_offscreen_png(renderer, path: str | Path, size=(900, 900), position=None, focal_point=None,
                       view_up=(0, 0, 1), zoom: float = 1.0) -> Path:
    """Render ``renderer`` offscreen (EGL/OSMesa, no X server) to a PNG; the camera looks from
    ``position`` at ``focal_point`` and is then fitted to what the renderer shows."""
    import vtk

    window = vtk.vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.SetSize(*size)
    window.AddRenderer(renderer)
    camera = renderer.GetActiveCamera()
    if position is not None and focal_point is not None:
        camera.SetPosition(*position)
        camera.SetFocalPoint(*focal_point)
    camera.SetViewUp(*view_up)
    renderer.ResetCamera()
    camera.Zoom(zoom)
    window.Render()
    grab = vtk.vtkWindowToImageFilter()
    grab.SetInput(window)
    grab.ReadFrontBufferOff()
    grab.Update()
    writer = vtk.vtkPNGWriter()
    path = Path(path)
    writer.SetFileName(str(path))
    writer.SetInputConnection(grab.GetOutputPort())
    writer.Write()
    window.Finalize()
    return path
