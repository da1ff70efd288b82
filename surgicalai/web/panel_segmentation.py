"""Segmentation panel: volume, model, device, TTA/CLAHE/denoise, Apply/Cancel with progress, the
segments (names, colours, volumes) and saving the .seg.nrrd and the scene .mrb."""
from __future__ import annotations

from trame.widgets import html
from trame.widgets import vuetify3 as v3

from SurgicalAICore.errors import SurgicalAIError
from SurgicalAICore.panel.choices import Device, ModelChoice
from SegmentationAILib.panel import SegmentPanel

from surgicalai.web.binding import StateBinding
from surgicalai.web.workspace import BUNDLED


class SegmentationPanel:
    """Binds the shared ``SegmentPanel`` (the one the Slicer face drives) to the page: its parameter node
    to the state, Apply/Cancel to its actions, its job to the server's poll loop."""

    TOOL = "SegmentationPanel"

    def __init__(self, app):
        self.app = app
        self.panel = SegmentPanel(app.slicer.scene)
        s = app.state
        s.sai_volumes = []
        s.sai_models = app.workspace.models()
        s.sai_model_key = BUNDLED
        s.sai_running, s.sai_job_fraction, s.sai_job_message, s.sai_job_state = False, 0.0, "", "idle"
        s.sai_segments = []
        s.sai_devices = [d.value for d in Device]
        self.binding = StateBinding(s, self.panel.params, {
            "sai_volume_id": "inputVolume", "sai_device": "device", "sai_tta": "tta", "sai_clahe": "clahe",
            "sai_denoise": "denoise"}, on_error=lambda text: app.tell(text, error=True))
        s.change("sai_model_key")(self.on_model_key)
        app.server.trigger("sai_apply")(self.apply)
        app.server.trigger("sai_cancel")(self.cancel)
        app.server.trigger("sai_save_seg")(self.save_segmentation)
        app.server.trigger("sai_save_scene")(self.save_scene)

    def on_model_key(self, sai_model_key=None, **_):
        """The page names models by key (the bundled one, or a folder in the data folder). No summary is
        read here: it imports torch, and trame calls this once when the server starts."""
        try:
            if sai_model_key in (None, BUNDLED):
                self.panel.params.update(model=ModelChoice.BUNDLED, modelFolder="")
            else:
                folder = self.app.workspace.model_folder(sai_model_key)
                self.panel.params.update(model=ModelChoice.FOLDER, modelFolder=folder)
        except SurgicalAIError as error:
            self.app.tell(str(error), error=True)

    def save_segmentation(self):
        node = self.panel.params.get("outputSegmentation")
        self.app.run_action(lambda: f"Saved {self.app.workspace.save_segmentation(node)}")

    def save_scene(self):
        self.app.run_action(lambda: f"Saved {self.app.workspace.save_scene()}")

    def apply(self):
        def start():
            self.panel.apply()
            self.show_status()
            return "Segmentation started."

        self.app.run_action(start)

    def cancel(self):
        self.panel.cancel()
        self.show_status()

    def poll(self) -> None:
        """Called by the server's loop: progress to every page; a finished job's result into the views."""
        if not self.panel.running:
            return
        finished = self.panel.poll()
        self.show_status()
        if finished:
            status = self.panel.status()
            self.app.tell(status["message"], error=status["state"] == "failed")
            if status["state"] == "done":
                self.app.show_segmentation(self.panel.params.get("outputSegmentation"))
                self.app.state.sai_segments = self.panel.segments()

    def show_status(self) -> None:
        status, s = self.panel.status(), self.app.state
        s.sai_running, s.sai_job_state, s.sai_job_message = status["running"], status["state"], status["message"]
        s.sai_job_fraction = round(100 * status["fraction"], 1)


def build_segmentation_panel(v_if):
    with v3.VCard(v_if=v_if, flat=True, id="sai-seg-panel"):
        v3.VCardTitle("Segmentation AI")
        with v3.VCardText():
            v3.VSelect(label="Volume", items=("sai_volumes",), item_title="name", item_value="id",
                       v_model=("sai_volume_id",), density="compact", id="sai-volume-select")
            v3.VSelect(label="Model", items=("sai_models",), item_title="title", item_value="key",
                       v_model=("sai_model_key",), density="compact", id="sai-model-select")
            v3.VSelect(label="Device", items=("sai_devices",), v_model=("sai_device",),
                       density="compact")
            with html.Div(classes="d-flex flex-wrap"):
                v3.VCheckbox(label="TTA", v_model=("sai_tta",), density="compact", hide_details=True)
                v3.VCheckbox(label="CLAHE", v_model=("sai_clahe",), density="compact", hide_details=True)
                v3.VCheckbox(label="Denoise", v_model=("sai_denoise",), density="compact", hide_details=True)
            v3.VBtn("Apply", v_if="!sai_running", click="trigger('sai_apply')", color="primary", id="sai-apply",
                    block=True, classes="mt-2")
            v3.VBtn("Cancel", v_else=True, click="trigger('sai_cancel')", color="warning", id="sai-cancel",
                    block=True, classes="mt-2")
            v3.VProgressLinear(model_value=("sai_job_fraction",), height=8, classes="mt-2", id="sai-progress",
                               color="primary")
            html.Div("{{ sai_job_message }}", id="sai-job-message", classes="text-caption",
                     __properties=[("data_state", "data-state")], data_state=("sai_job_state",))
            with html.Table(v_if="sai_segments.length", id="sai-segments", classes="mt-2 text-body-2",
                            style="width: 100%"):
                with html.Tr():
                    html.Th("", style="width: 18px")
                    html.Th("Segment", style="text-align: left")
                    html.Th("mL", style="text-align: right")
                with html.Tr(v_for="seg in sai_segments", key="seg.id", classes="sai-segment-row",
                             __properties=[("data_color", "data-color")], data_color=("seg.color",)):
                    with html.Td():
                        html.Div(style=("{background: seg.color, width: '14px', height: '14px'}",))
                    html.Td("{{ seg.name }}")
                    html.Td("{{ seg.volume_ml }}", style="text-align: right")
            with html.Div(classes="d-flex mt-2"):
                v3.VBtn("Save .seg.nrrd", click="trigger('sai_save_seg')", size="small", id="sai-save-seg",
                        disabled=("!sai_segments.length",))
                v3.VBtn("Save scene .mrb", click="trigger('sai_save_scene')", size="small", classes="ml-2",
                        id="sai-save-scene")
            html.Div("Correct a structure with the segment editor (brush button on the left): paint, erase, "
                     "islands, smoothing, undo.", classes="text-caption mt-2")
