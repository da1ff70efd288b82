"""The slice and 3-D views the page shows, streamed by trame-rca, set up for a CPU-rendered server.

- No rendering while the views are built: trame-slicer's views render synchronously on every
  display-manager update until their remote scheduler is attached (``DirectRendering``); building the four
  views and their layouts rendered about 240 frames, 6.5 of the 14 s the app took to build on this machine.
- No multisampling: with Mesa's llvmpipe an 8x multisampled slice frame costs 55-70 ms instead of 3 ms.
- One render per change: the image scheduler renders a frame at interactive JPEG quality and, once the
  view is still, renders it *again* at still quality. Equal qualities make that a single render; JPEG
  quality 80 is sharp enough for both, and encoding is not the cost, rendering is.
- A cap on the pixels a view renders, so a large high-DPI screen does not multiply the render time.
- The view the user is working in renders first: a slice scroll also changes the 3-D view and the other
  slice views (slice planes, intersections), and their renders, queued in whatever order the scene's
  observers ran, could all come before the scrolled view's frame (4 renders instead of 1 before it).
- Volume rendering (GPU ray casting, on llvmpipe 2-3 s a frame for the sample CT) is off until asked
  for (``set_volume_rendering``), and then adaptive, so a rotation stays interactive.
"""
from __future__ import annotations

import asyncio
import time

from trame_slicer.app.ui import create_vertical_slice_view_gutter_ui, create_vertical_view_gutter_ui
from trame_slicer.rca_view import RemoteViewFactory
from trame_slicer.views import NoScheduleRendering, ScheduledRenderStrategy, SliceView, ThreeDView, ViewType

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


class InteractionFocus:
    """The view a user's input went to last, for a short while."""

    HOLD_S = 0.3

    def __init__(self) -> None:
        self.view = None
        self.until = 0.0

    def touch(self, view) -> None:
        self.view, self.until = view, time.monotonic() + self.HOLD_S

    def elsewhere(self, view) -> bool:
        return self.view is not None and self.view is not view and time.monotonic() < self.until


FOCUS = InteractionFocus()


class FocusedViewFirst(ScheduledRenderStrategy):
    """Asks the view's remote scheduler for a frame; while the user works in another view, only after the
    current event is handled, so that view's render (already woken) comes first."""

    def __init__(self, adapter, focus: InteractionFocus = FOCUS):
        super().__init__()
        self.adapter = adapter
        self.focus = focus

    def schedule_render(self):
        if self.focus.elsewhere(self.abstract_view):
            try:
                asyncio.get_running_loop().call_soon(self.adapter.schedule_render)
                return
            except RuntimeError:  # no loop running (start-up): nothing to order
                pass
        self.adapter.schedule_render()


def follow_focus(adapter, view, focus: InteractionFocus = FOCUS) -> None:
    """Note ``view`` as the focus whenever input for it arrives through ``adapter``."""
    handle = adapter.on_interaction

    def on_interaction(origin, event):
        focus.touch(view)
        return handle(origin, event)

    adapter.on_interaction = on_interaction


class ServerRenderedViewFactory(RemoteViewFactory):
    def _create_view(self, view, scene, app_logic):
        rca_view = super()._create_view(view, scene, app_logic)
        adapter = rca_view.view_adapter
        adapter.update_quality(JPEG_QUALITY, JPEG_QUALITY)
        adapter.max_pixel_count = MAX_VIEW_PIXELS
        rca_view.slicer_view.set_scheduled_render(FocusedViewFirst(adapter))
        follow_focus(adapter, rca_view.slicer_view)
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
