"""The slice and 3-D views the page shows, streamed by trame-rca; built so that start-up does not render.

trame-slicer's views render synchronously on every display-manager update until their remote scheduler is
attached (``DirectRendering``): building the four views and their layouts rendered about 240 frames on the
CPU, 6.5 of the 14 s the app took to build on this machine. Here each view starts with no rendering; the
remote scheduler attached by the factory renders on demand once a page is connected. Multisampling is off:
with Mesa's llvmpipe an 8x multisampled frame costs several times a plain one, and the slice views are
images that gain nothing from it.
"""
from __future__ import annotations

from trame_slicer.app.ui import create_vertical_slice_view_gutter_ui, create_vertical_view_gutter_ui
from trame_slicer.rca_view import RemoteViewFactory
from trame_slicer.views import NoScheduleRendering, SliceView, ThreeDView, ViewType

RCA_OPTIONS = {"target_fps": 30.0, "blur_fps": 10.0, "interactive_quality": 50}


def quiet_view(view_class):
    """A constructor of ``view_class`` that renders nothing until its remote scheduler is attached."""
    def build(*args, **kwargs):
        view = view_class(*args, scheduled_render_strategy=NoScheduleRendering(), **kwargs)
        view.render_window().SetMultiSamples(0)
        return view

    return build


def register_views(view_manager, server) -> None:
    for view_class, view_type, gutter in ((SliceView, ViewType.SLICE_VIEW, create_vertical_slice_view_gutter_ui),
                                          (ThreeDView, ViewType.THREE_D_VIEW, create_vertical_view_gutter_ui)):
        view_manager.register_factory(RemoteViewFactory(server, quiet_view(view_class), view_type=view_type,
                                                        populate_view_ui_f=gutter, **RCA_OPTIONS))
