"""The slice and 3-D views the page shows, streamed by trame-rca, set up for a CPU-rendered server.

- No rendering while the views are built: trame-slicer's views render synchronously on every
  display-manager update until their remote scheduler is attached (``DirectRendering``); building the four
  views and their layouts rendered about 240 frames, 6.5 of the 14 s the app took to build on this machine.
- No multisampling: with Mesa's llvmpipe an 8x multisampled slice frame costs 55-70 ms instead of 3 ms.
- One render per change: the image scheduler renders a frame at interactive JPEG quality and, once the
  view is still, renders it *again* at still quality. Equal qualities make that a single render; JPEG
  quality 80 is sharp enough for both, and encoding is not the cost, rendering is.
- A cap on the pixels a view renders, so a large high-DPI screen does not multiply the render time.
- Volume rendering (GPU ray casting, on llvmpipe 2-3 s a frame for the sample CT) is off until asked
  for (``set_volume_rendering``), and then adaptive, so a rotation stays interactive.
"""
from __future__ import annotations

from trame_slicer.app.ui import create_vertical_slice_view_gutter_ui, create_vertical_view_gutter_ui
from trame_slicer.rca_view import RemoteViewFactory
from trame_slicer.views import NoScheduleRendering, SliceView, ThreeDView, ViewType

JPEG_QUALITY = 80
MAX_VIEW_PIXELS = 640 * 480
VOLUME_RENDERING_FPS = 10.0


def quiet_view(view_class):
    """A constructor of ``view_class`` that renders nothing until its remote scheduler is attached."""
    def build(*args, **kwargs):
        view = view_class(*args, scheduled_render_strategy=NoScheduleRendering(), **kwargs)
        view.render_window().SetMultiSamples(0)
        return view

    return build


class ServerRenderedViewFactory(RemoteViewFactory):
    def _create_view(self, view, scene, app_logic):
        rca_view = super()._create_view(view, scene, app_logic)
        rca_view.view_adapter.update_quality(JPEG_QUALITY, JPEG_QUALITY)
        rca_view.view_adapter.max_pixel_count = MAX_VIEW_PIXELS
        return rca_view


def register_views(view_manager, server) -> None:
    for view_class, view_type, gutter in ((SliceView, ViewType.SLICE_VIEW, create_vertical_slice_view_gutter_ui),
                                          (ThreeDView, ViewType.THREE_D_VIEW, create_vertical_view_gutter_ui)):
        view_manager.register_factory(ServerRenderedViewFactory(
            server, quiet_view(view_class), view_type=view_type, populate_view_ui_f=gutter,
            interactive_quality=JPEG_QUALITY))


def set_volume_rendering(scene, volume, visible: bool) -> None:
    """Show or hide ``volume``'s volume rendering (made by trame-slicer's ``show_volume``) in the 3-D views."""
    for i in range(scene.GetNumberOfNodesByClass("vtkMRMLViewNode")):
        view_node = scene.GetNthNodeByClass(i, "vtkMRMLViewNode")
        view_node.SetVolumeRenderingQuality(view_node.Adaptive)
        view_node.SetExpectedFPS(VOLUME_RENDERING_FPS)
    for i in range(volume.GetNumberOfDisplayNodes()):
        display = volume.GetNthDisplayNode(i)
        if display is not None and display.IsA("vtkMRMLVolumeRenderingDisplayNode"):
            display.SetVisibility(bool(visible))
