"""Endoscopy panel: a video or frame folder from the data folder; depth maps and point clouds per frame
(in the 3-D view with the CT); registration (target, start, run, quality); the CT-structure overlay.

Binds the shared ``DepthPanel`` and ``RegistrationPanel`` (the ones the Slicer face drives), built on first
use: the registration stack imports torch, which the first page must not wait for."""
from __future__ import annotations

from trame.widgets import html
from trame.widgets import vuetify3 as v3

from SurgicalAICore.errors import InputError

from surgicalai.web.binding import StateBinding
from surgicalai.web.images import depth_png, node_rgb, png_url
START_METHODS = ("current", "global", "global-full")  # those that need no tracker or landmarks


class EndoscopyPanel:
    TOOL = "EndoscopyPanel"

    def __init__(self, app):
        self.app = app
        self.depth = None
        self.registration = None
        s = app.state
        s.sai_endo_sources, s.sai_endo_source, s.sai_endo_frames = app.workspace.video_sources(), None, 5
        s.sai_endo_running, s.sai_endo_fraction, s.sai_endo_message = False, 0.0, ""
        s.sai_endo_count, s.sai_endo_index = 0, 0
        s.sai_endo_frame_png, s.sai_endo_depth_png, s.sai_endo_overlay_png = "", "", ""
        s.sai_endo_method, s.sai_endo_threshold, s.sai_endo_quality = "global", 200.0, None
        s.sai_endo_methods = list(START_METHODS)
        for name, fn in (("sai_endo_run", self.run), ("sai_endo_cancel", self.cancel),
                         ("sai_endo_refresh", self.refresh), ("sai_endo_target", self.target),
                         ("sai_endo_register", self.register), ("sai_endo_overlay", self.overlay),
                         ("sai_endo_fuse", self.fuse)):
            app.server.trigger(name)(fn)
        s.change("sai_endo_index")(self.on_index)

    def panels(self):
        """The shared depth and registration panels on the live scene (built once, on first use)."""
        if self.depth is None:
            from SurgicalDepthLib.panel.depth_panel import DepthPanel
            from SurgicalDepthLib.panel.registration_panel import RegistrationPanel

            scene, state = self.app.slicer.scene, self.app.state
            depth = DepthPanel(scene, show_in_views=False)  # the page shows frame and depth beside the views
            self.registration = RegistrationPanel(scene, depth)
            tell = lambda text: self.app.tell(text, error=True)  # noqa: E731
            self.bindings = [
                StateBinding(state, depth.params, {"sai_endo_frames": "maxFrames"}, tell, seed=True),
                StateBinding(state, self.registration.params, {"sai_endo_threshold": "thresholdHu",
                                                               "sai_endo_method": "initMethod"}, tell, seed=True)]
            self.depth = depth
        return self.depth, self.registration

    def refresh(self):
        self.app.state.sai_endo_sources = self.app.workspace.video_sources()

    # -- depth --------------------------------------------------------------------------------------
    def run(self, source=None, frames=None):
        s = self.app.state

        def start():
            self.choose_source(source or s.sai_endo_source, frames if frames is not None else s.sai_endo_frames)
            self.depth.process_all()
            s.sai_endo_overlay_png, s.sai_endo_quality = "", None
            self.show_status()
            return "Depth started."

        self.app.run_action(start)

    def choose_source(self, relative: str | None, frames) -> None:
        """The depth panel's source and frame limit from the page's choice in the data folder."""
        settings = self.app.workspace.depth_source(relative, frames)
        depth, _ = self.panels()
        depth.params.update(device=self.app.segmentation.panel.params.get("device"), **settings)

    def cancel(self):
        if self.depth is not None:
            self.depth.cancel()
            self.show_status()

    def poll(self) -> None:
        """Called by the server's loop: progress to every page; a finished run's frames into the page."""
        if self.depth is None or not self.depth.job.running:
            return
        finished = self.depth.job.poll()
        self.show_status()
        if finished:
            status = self.depth.status()
            self.app.tell(status["message"], error=status["state"] == "failed")
            if status["state"] == "done":
                self.app.state.sai_endo_count = self.depth.frame_count()
                self.app.state.sai_endo_index = 0
                self.on_index(0)

    def show_status(self) -> None:
        status, s = self.depth.status(), self.app.state
        s.sai_endo_running, s.sai_endo_message = status["running"], status["message"]
        s.sai_endo_fraction = round(100 * status["fraction"], 1)

    def on_index(self, sai_endo_index=0, **_):
        if self.depth is None or self.depth.frame_count() == 0:
            return
        self.depth.select_frame(sai_endo_index or 0)
        s = self.app.state
        rgb = node_rgb(self.depth.params.get("videoNode"))
        s.sai_endo_frame_png = png_url(rgb) if rgb is not None else ""
        s.sai_endo_depth_png = depth_png(self.depth.params.get("depthNode"))
        self.app.render_all()

    # -- registration and overlay -------------------------------------------------------------------
    def target(self):
        def choose():
            _, registration = self.panels()
            seg = self.app.segmentation.panel.params.get("outputSegmentation")
            volume = self.app.segmentation.panel.params.get("inputVolume")
            if seg is not None:
                registration.params.update(targetType="segmentation", targetSegmentation=seg)
            elif volume is not None:
                registration.params.update(targetType="threshold", targetVolume=volume)
            else:
                raise InputError("Load a CT (and segment it) before choosing a registration target.")
            target = registration.ensure_target()
            return f"Target: {target.name} ({len(target.points)} surface points)"

        self.app.run_action(choose)

    def register(self):
        def run():
            _, registration = self.panels()
            registration.register()
            status = registration.status()
            self.app.state.sai_endo_quality = status
            self.show_overlay()
            self.app.render_all()
            return f"Registered: {status['quality']} ({status['message']})"

        self.app.run_action(run)

    def overlay(self):
        def run():
            _, registration = self.panels()
            registration.overlay()
            self.show_overlay()
            return "CT structures overlaid on the frame."

        self.app.run_action(run)

    def fuse(self):
        """The last registered (trusted) frames fused into one surface model, in the 3-D view with the CT."""
        def run():
            _, registration = self.panels()
            registration.fuse()
            self.app.render_all()
            return registration.message

        self.app.run_action(run)

    def show_overlay(self) -> None:
        rgb = node_rgb(self.registration.overlay_node)
        self.app.state.sai_endo_overlay_png = png_url(rgb) if rgb is not None else ""


def build_endoscopy_panel(v_if):
    with v3.VCard(v_if=v_if, flat=True, id="sai-endo-panel"):
        v3.VCardTitle("Endoscopy")
        with v3.VCardText():
            v3.VSelect(label="Video or frame folder", items=("sai_endo_sources",), v_model=("sai_endo_source",),
                       density="compact", id="sai-endo-source")
            v3.VTextField(label="Frames", v_model_number=("sai_endo_frames",), type="number", density="compact")
            v3.VBtn("Run depth", v_if="!sai_endo_running", color="primary",
                    click="trigger('sai_endo_run', [sai_endo_source, sai_endo_frames])",
                    block=True, id="sai-endo-run")
            v3.VBtn("Cancel", v_else=True, click="trigger('sai_endo_cancel')", color="warning", block=True)
            v3.VProgressLinear(model_value=("sai_endo_fraction",), height=6, classes="mt-2")
            html.Div("{{ sai_endo_message }}", classes="text-caption", id="sai-endo-message")
            v3.VSlider(v_if="sai_endo_count > 1", v_model=("sai_endo_index",), min=0, max=("sai_endo_count - 1",),
                       step=1, label="Frame", density="compact", hide_details=True)
            with html.Div(v_if="sai_endo_frame_png", classes="d-flex mt-1"):
                html.Img(src=("sai_endo_frame_png",), style="width: 33%", id="sai-endo-frame")
                html.Img(src=("sai_endo_depth_png",), style="width: 33%", id="sai-endo-depth")
                html.Img(v_if="sai_endo_overlay_png", src=("sai_endo_overlay_png",), style="width: 33%",
                         id="sai-endo-overlay")
            v3.VDivider(classes="my-2")
            html.Div("Registration", classes="text-subtitle-2")
            v3.VTextField(label="CT threshold (HU) when no segmentation", v_model_number=("sai_endo_threshold",),
                          type="number", density="compact")
            v3.VBtn("Set target", click="trigger('sai_endo_target')", size="small", id="sai-endo-target")
            v3.VSelect(label="Start", items=("sai_endo_methods",), v_model=("sai_endo_method",),
                       density="compact", classes="mt-2")
            with html.Div(classes="d-flex"):
                v3.VBtn("Register", click="trigger('sai_endo_register')", size="small", id="sai-endo-register")
                v3.VBtn("Overlay", click="trigger('sai_endo_overlay')", size="small", classes="ml-2",
                        id="sai-endo-overlay-btn")
                v3.VBtn("Fuse frames", click="trigger('sai_endo_fuse')", size="small", classes="ml-2",
                        id="sai-endo-fuse")
            html.Div("{{ sai_endo_quality.quality }}, {{ sai_endo_quality.state }}",
                     v_if="sai_endo_quality", id="sai-endo-quality", classes="text-caption")
