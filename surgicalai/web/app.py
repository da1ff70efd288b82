"""``surgicalai web``: the extension's browser face, on Kitware's trame-slicer (Slicer's MRML scene,
slice/3-D views and segment editor served to the browser).

One server holds one planning session (one scene); every browser connected to it shares that scene
and the panel state, so a planning team on several laptops follows each other's changes.
"""
from __future__ import annotations

import asyncio
import logging

from trame.app import TrameApp, get_server
from trame.widgets import html
from trame_slicer import module as trame_slicer_module
from trame_slicer.app.logic import (
    LayoutButtonLogic,
    MprInteractionButtonLogic,
    SegmentEditorLogic,
    VolumePropertyLogic,
)
from trame_slicer.app.ui import (
    ControlButton,
    LayoutButton,
    MprInteractionButton,
    SegmentEditorToolbarUI,
    SegmentEditorUI,
    SegmentEditorUndoRedoUI,
    ViewerLayout,
    VolumePropertyUI,
)
from trame_slicer.core import SlicerApp

from SurgicalAICore.errors import SurgicalAIError

from surgicalai.web.panel_case import CasePanel, build_case_panel
from surgicalai.web.panel_endoscopy import EndoscopyPanel, build_endoscopy_panel
from surgicalai.web.panel_segmentation import SegmentationPanel, build_segmentation_panel
from surgicalai.web.security import DataRoot
from surgicalai.web.page_build import one_render
from surgicalai.web.server_hooks import install_hooks
from surgicalai.web.views import register_views, set_volume_rendering
from surgicalai.web.workspace import Workspace

log = logging.getLogger(__name__)
POLL_S = 0.1


class SurgicalAIWeb(TrameApp):
    def __init__(self, data: DataRoot, token: str | None = None, load_sample: bool = True, server=None):
        super().__init__(server or get_server("surgicalai", client_type="vue3"))
        self.server.enable_module(trame_slicer_module)
        self.slicer = SlicerApp()
        self._register_sequences()
        self.workspace = Workspace(self.slicer.scene, data)
        register_views(self.slicer.view_manager, self.server)
        self.editor = SegmentEditorLogic(self.server, self.slicer)
        self.volume_props = VolumePropertyLogic(self.server, self.slicer)
        self.layout_logic = LayoutButtonLogic(self.server, self.slicer)
        self.mpr = MprInteractionButtonLogic(self.server, self.slicer)
        self.state.sai_message, self.state.sai_message_error = "", False
        self.state.sai_volume_rendering = False  # on a CPU-rendered server a ray-cast frame takes seconds
        self.state.change("sai_volume_rendering")(self._on_volume_rendering)
        self.state.trame__title = "SurgicalAI planning"
        self.case = CasePanel(self)
        self.segmentation = SegmentationPanel(self)
        self.endoscopy = EndoscopyPanel(self)
        with one_render():
            self._build_ui()
        install_hooks(self.server, self.slicer.scene, token)
        self.server.controller.on_server_ready.add(self._start_polling)
        self.server.controller.on_client_connected.add(self._on_client_connected)
        if load_sample:
            self.show_volume(self.workspace.load_sample())

    def _register_sequences(self):
        import slicer

        self.slicer.register_module_logic(slicer.vtkSlicerSequencesLogic(), logic_name="Sequences")

    # -- shared helpers the panels use ------------------------------------------------------------
    def tell(self, message: str, error: bool = False) -> None:
        """One line for the page (every client sees it)."""
        self.state.sai_message, self.state.sai_message_error = message, error
        (log.warning if error else log.info)(message)

    def run_action(self, action) -> None:
        """Run a quick action; bad input becomes a message, the scene is left as it was."""
        try:
            self.tell(action() or "done")
        except SurgicalAIError as error:
            self.tell(str(error), error=True)
        except OSError as error:
            self.tell(f"{error.strerror or error}: {error.filename or ''}", error=True)

    def show_volume(self, volume) -> None:
        for view in self.slicer.view_manager.get_slice_views():
            view.set_visible_in_3d(True)  # the 3-D view shows the case from the first page on
        self.slicer.display_manager.show_volume(volume, do_reset_views=True)
        set_volume_rendering(self.slicer.scene, volume, bool(self.state.sai_volume_rendering))
        self.volume_props.on_volume_changed(volume)
        self.state.is_volume_loaded = True
        self.state.sai_case_name = volume.GetName()
        self.state.sai_volumes = self.workspace.volumes()
        # the shared segment panel's input (its binding shows it); a new case gets a new segmentation
        self.segmentation.panel.params.update(inputVolume=volume, outputSegmentation=None)

    def _on_volume_rendering(self, sai_volume_rendering=False, **_):
        volume = self.segmentation.panel.params.get("inputVolume")
        if volume is not None:
            set_volume_rendering(self.slicer.scene, volume, bool(sai_volume_rendering))

    def show_segmentation(self, node) -> None:
        volume = self.segmentation.panel.params.get("inputVolume")
        editor = self.slicer.segmentation_editor
        editor.deactivate_effect()
        if volume is not None:
            editor.set_active_segmentation(node, volume)
        editor.set_surface_representation_enabled(True)  # the structures as surfaces in the 3-D view
        node.GetDisplayNode().SetVisibility3D(True)
        node.GetDisplayNode().SetPreferredDisplayRepresentationName3D("Closed surface")
        self.render_all()

    def render_all(self) -> None:
        for view in self.slicer.view_manager.get_views():
            view.schedule_render()

    def _on_client_connected(self, *_args, **_kwargs):
        # a view sends frames when it renders; a page that joins after the last render would show none
        loop = asyncio.get_event_loop()
        for delay in (0.3, 1.5):
            loop.call_later(delay, self.render_all)

    # -- background jobs ----------------------------------------------------------------------------
    def _start_polling(self, **_):
        asyncio.get_event_loop().create_task(self._poll_jobs())

    async def _poll_jobs(self):
        while True:
            await asyncio.sleep(POLL_S)
            for panel in (self.segmentation, self.endoscopy):
                with self.state:
                    try:
                        panel.poll()
                    except SurgicalAIError as error:
                        self.tell(str(error), error=True)

    # -- page ---------------------------------------------------------------------------------------
    def _build_ui(self):
        with ViewerLayout(self.server, title="SurgicalAI", is_drawer_visible=True) as self.layout:
            self.state[self.layout.typed_state.name.active_tool] = CasePanel.TOOL
            with self.layout.appbar:
                html.Div("Case: {{ sai_case_name || 'none' }}", id="sai-case-title", classes="text-body-2 mx-2")
                html.Div("{{ sai_message }}", id="sai-message", classes="text-body-2 mx-4",
                         style=("{color: sai_message_error ? '#ff7070' : '#a0e0a0'}",),
                         __properties=[("data_error", "data-error")], data_error=("sai_message_error",))
            name = self.layout.typed_state.name
            with self.layout.drawer:
                build_case_panel(v_if=f"{name.active_tool} === '{CasePanel.TOOL}'")
                build_segmentation_panel(v_if=f"{name.active_tool} === '{SegmentationPanel.TOOL}'")
                build_endoscopy_panel(v_if=f"{name.active_tool} === '{EndoscopyPanel.TOOL}'")
                editor_ui = SegmentEditorUI(v_if=(f"{name.active_tool} === 'SegmentEditorUI'",))
                volume_ui = VolumePropertyUI(v_if=(f"{name.active_tool} === 'VolumePropertyUI'",))
            with self.layout.toolbar:
                for tool, icon, title in ((CasePanel.TOOL, "mdi-folder-open", "Case"),
                                          (SegmentationPanel.TOOL, "mdi-brain", "Segmentation AI"),
                                          ("SegmentEditorUI", "mdi-brush", "Segment editor"),
                                          (EndoscopyPanel.TOOL, "mdi-video", "Endoscopy"),
                                          ("VolumePropertyUI", "mdi-tune-variant", "Volume rendering")):
                    ControlButton(icon=icon, name=title, click=f"{name.active_tool} = '{tool}'; "
                                  f"{name.is_drawer_visible} = true", active=(f"{name.active_tool} === '{tool}'",),
                                  classes="mt-1", id=f"sai-tool-{tool}")
                layout_button = LayoutButton(classes="mt-1")
                mpr_button = MprInteractionButton(classes="mt-1")
                SegmentEditorToolbarUI(editor_ui=editor_ui)
            with self.layout.undo_redo:
                SegmentEditorUndoRedoUI(editor_ui=editor_ui, v_if=(f"{name.active_tool} === 'SegmentEditorUI'",))
            with self.layout.content:
                self.layout_logic.layout_manager.initialize_layout_grid(self.layout)
        self.editor.set_ui(editor_ui)
        self.volume_props.set_ui(volume_ui)
        self.layout_logic.set_ui(layout_button)
        self.mpr.set_ui(mpr_button)
