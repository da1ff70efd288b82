"""Endoscopy panel: a video or frame folder from the data folder; depth maps and point clouds per frame
(in the 3-D view with the CT); registration (target, start, run, quality); the CT-structure overlay."""
from __future__ import annotations

from trame.widgets import html
from trame.widgets import vuetify3 as v3

from SurgicalAICore.errors import InputError

from surgicalai.web.session_endoscopy import EndoscopySession


class EndoscopyPanel:
    TOOL = "EndoscopyPanel"

    def __init__(self, app):
        self.app = app
        self.session = EndoscopySession(app.slicer.scene, app.session.data)
        self.job = None
        s = app.state
        s.sai_endo_sources, s.sai_endo_source, s.sai_endo_frames = self.session.sources(), None, 5
        s.sai_endo_running, s.sai_endo_fraction, s.sai_endo_message = False, 0.0, ""
        s.sai_endo_count, s.sai_endo_index = 0, 0
        s.sai_endo_frame_png, s.sai_endo_depth_png, s.sai_endo_overlay_png = "", "", ""
        s.sai_endo_method, s.sai_endo_threshold, s.sai_endo_quality = "global", 200.0, None
        for name, fn in (("sai_endo_run", self.run), ("sai_endo_cancel", self.cancel),
                         ("sai_endo_refresh", self.refresh), ("sai_endo_target", self.target),
                         ("sai_endo_register", self.register), ("sai_endo_overlay", self.overlay)):
            app.server.trigger(name)(fn)
        s.change("sai_endo_index")(self.on_index)

    def refresh(self):
        self.app.state.sai_endo_sources = self.session.sources()

    def run(self, source=None, frames=None):
        s = self.app.state

        def start():
            if self.job is not None and self.job.running:
                raise InputError("Depth is already running.")
            self.job = self.session.start_depth(source or s.sai_endo_source, frames or s.sai_endo_frames,
                                                s.sai_device).start()
            s.sai_endo_running, s.sai_endo_fraction = True, 0.0
            return "Depth started."

        self.app.run_action(start)

    def cancel(self):
        if self.job is not None and self.job.running:
            self.job.cancel()

    def on_job(self, status: dict, finished: bool):
        s = self.app.state
        s.sai_endo_fraction = round(100 * status["fraction"], 1)
        s.sai_endo_message = status["message"]
        if finished:
            s.sai_endo_running = False
            self.app.tell(status["message"], error=status["state"] == "failed")
            if status["state"] == "done":
                s.sai_endo_count = len(self.session.results)
                s.sai_endo_index = 0
                self.on_index(0)
                self.app.render_all()

    def on_index(self, sai_endo_index=0, **_):
        self.session.show_frame(sai_endo_index or 0)
        images = self.session.frame_images(sai_endo_index or 0)
        self.app.state.sai_endo_frame_png = images.get("frame", "")
        self.app.state.sai_endo_depth_png = images.get("depth", "")
        self.app.render_all()

    def target(self):
        s = self.app.state
        seg = self.app.session.segmentation_node
        volume = self.app.slicer.scene.GetNodeByID(s.sai_volume_id) if s.sai_volume_id else None
        self.app.run_action(lambda: self.session.set_target(seg, volume, s.sai_endo_threshold))

    def register(self):
        s = self.app.state

        def run():
            quality = self.session.register(s.sai_endo_index, s.sai_endo_method)
            s.sai_endo_quality = quality
            self.app.render_all()
            verdict = "trusted" if quality["trusted"] else f"not trusted: {quality['reason']}"
            return f"Registered: RMS {quality['rms_mm']} mm, inliers {quality['inliers']:.0%} ({verdict})"

        self.app.run_action(run)

    def overlay(self):
        s = self.app.state

        def run():
            s.sai_endo_overlay_png = self.session.overlay(s.sai_endo_index)
            return "CT structures overlaid on the frame."

        self.app.run_action(run)


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
            v3.VSelect(label="Start", items=("['current', 'global', 'global-full']",), v_model=("sai_endo_method",),
                       density="compact", classes="mt-2")
            with html.Div(classes="d-flex"):
                v3.VBtn("Register", click="trigger('sai_endo_register')", size="small", id="sai-endo-register")
                v3.VBtn("Overlay", click="trigger('sai_endo_overlay')", size="small", classes="ml-2",
                        id="sai-endo-overlay-btn")
            html.Div("RMS {{ sai_endo_quality.rms_mm }} mm, inliers {{ sai_endo_quality.inliers }}, "
                     "{{ sai_endo_quality.trusted ? 'trusted' : 'not trusted' }}",
                     v_if="sai_endo_quality", id="sai-endo-quality", classes="text-caption")
