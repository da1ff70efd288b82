"""Segmentation panel: volume, model, device, TTA/CLAHE/denoise, Apply/Cancel with progress, the
segments (names, colours, volumes) and saving the .seg.nrrd and the scene .mrb."""
from __future__ import annotations

from trame.widgets import html
from trame.widgets import vuetify3 as v3


class SegmentationPanel:
    TOOL = "SegmentationPanel"

    def __init__(self, app):
        self.app = app
        s = app.state
        s.sai_volumes, s.sai_volume_id = [], None
        s.sai_models = app.session.models()
        s.sai_model_key = s.sai_models[0]["key"] if s.sai_models else None
        s.sai_device, s.sai_tta, s.sai_clahe, s.sai_denoise = "auto", True, False, False
        s.sai_running, s.sai_job_fraction, s.sai_job_message, s.sai_job_state = False, 0.0, "", ""
        s.sai_segments = []
        app.server.trigger("sai_apply")(self.apply)
        app.server.trigger("sai_cancel")(self.cancel)
        app.server.trigger("sai_save_seg")(self.save_segmentation)
        app.server.trigger("sai_save_scene")(self.save_scene)

    def save_segmentation(self):
        self.app.run_action(lambda: f"Saved {self.app.session.save_segmentation()}")

    def save_scene(self):
        self.app.run_action(lambda: f"Saved {self.app.session.save_scene()}")

    def apply(self):
        s = self.app.state
        options = {"device": s.sai_device, "tta": bool(s.sai_tta), "clahe": bool(s.sai_clahe),
                   "denoise": bool(s.sai_denoise)}

        def start():
            self.app.session.start_segmentation(s.sai_volume_id, s.sai_model_key, options)
            s.sai_running, s.sai_job_fraction, s.sai_job_state = True, 0.0, "running"
            return "Segmentation started."

        self.app.run_action(start)

    def cancel(self):
        job = self.app.session.job
        if job is not None and job.running:
            job.cancel()
            self.app.state.sai_job_message = "cancelling"

    def on_job(self, status: dict, finished: bool):
        s = self.app.state
        s.sai_job_fraction = round(100 * status["fraction"], 1)
        s.sai_job_message = status["message"]
        s.sai_job_state = status["state"]
        if finished:
            s.sai_running = False
            self.app.tell(status["message"], error=status["state"] == "failed")
            if status["state"] == "done":
                self.app.show_segmentation(self.app.session.segmentation_node)
                s.sai_segments = self.app.session.segments()


def build_segmentation_panel(v_if):
    with v3.VCard(v_if=v_if, flat=True, id="sai-seg-panel"):
        v3.VCardTitle("Segmentation AI")
        with v3.VCardText():
            v3.VSelect(label="Volume", items=("sai_volumes",), item_title="name", item_value="id",
                       v_model=("sai_volume_id",), density="compact", id="sai-volume-select")
            v3.VSelect(label="Model", items=("sai_models",), item_title="title", item_value="key",
                       v_model=("sai_model_key",), density="compact", id="sai-model-select")
            v3.VSelect(label="Device", items=("['auto', 'cpu', 'cuda']",), v_model=("sai_device",),
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
