"""Case panel: load a CT/MRI from the data folder (file or DICOM folder) or by upload."""
from __future__ import annotations

from trame.widgets import html
from trame.widgets import vuetify3 as v3

from SurgicalAICore.errors import InputError, SurgicalAIError

from surgicalai.web.security import IMAGE_SUFFIXES


class CasePanel:
    TOOL = "CasePanel"

    def __init__(self, app):
        self.app = app
        state = app.state
        state.sai_files = []
        state.sai_case_path = None
        state.sai_upload = None
        state.sai_case_name = ""
        app.server.trigger("sai_load_case")(self.load_selected)
        app.server.trigger("sai_refresh_files")(self.refresh_files)
        state.change("sai_upload")(self.on_upload)
        self.refresh_files()

    def refresh_files(self):
        data = self.app.workspace.data
        self.app.state.sai_files = [e["path"] for e in data.listing(IMAGE_SUFFIXES)
                                    if e["kind"] == "folder" or e["path"].lower().endswith(IMAGE_SUFFIXES)]

    def load_selected(self, path=None):
        # the page passes the path it shows, so a click never races the select's state update
        path = path or self.app.state.sai_case_path
        if not path:
            self.app.tell("Choose a file or DICOM folder from the data folder first.", error=True)
            return
        self.app.run_action(lambda: self._show(self.app.workspace.load_case(path)))

    def _show(self, volume):
        self.app.show_volume(volume)
        return f"Loaded '{volume.GetName()}'."

    def on_upload(self, sai_upload, **_):
        if not sai_upload:
            return
        self.app.state.sai_upload = None
        uploads = sai_upload if isinstance(sai_upload, list) else [sai_upload]
        for upload in uploads:
            try:
                name, content = upload_parts(upload)
                target = self.app.workspace.data.write_upload(name, content, IMAGE_SUFFIXES)
            except SurgicalAIError as error:
                self.app.tell(str(error), error=True)
                return
            relative = target.relative_to(self.app.workspace.data.root).as_posix()
            self.refresh_files()
            self.app.state.sai_case_path = relative
            self.app.run_action(lambda r=relative: self._show(self.app.workspace.load_case(r)))


def upload_parts(upload) -> tuple[str, bytes]:
    """(name, content) of a file the page sent; anything malformed is refused with a message."""
    if not isinstance(upload, dict):
        raise InputError("Upload refused: not a file.")
    content = upload.get("content")
    if isinstance(content, list) and all(isinstance(c, int) for c in content):
        content = bytes(content) if all(0 <= c < 256 for c in content) else None
    elif isinstance(content, list):
        content = b"".join(bytes(c) for c in content if isinstance(c, (bytes, bytearray, memoryview)))
    if not isinstance(content, (bytes, bytearray, memoryview)):
        raise InputError("Upload refused: the file's content did not arrive.")
    return str(upload.get("name") or ""), bytes(content)


def build_case_panel(v_if):
    with v3.VCard(v_if=v_if, flat=True, id="sai-case-panel"):
        v3.VCardTitle("Case")
        with v3.VCardText():
            html.Div("Current: {{ sai_case_name || 'none' }}", id="sai-case-name", classes="mb-2")
            v3.VSelect(label="From the data folder", items=("sai_files",), v_model=("sai_case_path",),
                       density="compact", id="sai-case-select")
            with html.Div(classes="d-flex"):
                v3.VBtn("Load", click="trigger('sai_load_case', [sai_case_path])", id="sai-load-case",
                        color="primary", size="small")
                v3.VBtn("Refresh", click="trigger('sai_refresh_files')", size="small", classes="ml-2")
            v3.VCheckbox(label="Volume rendering in 3-D (slow without a GPU)", v_model=("sai_volume_rendering",),
                         density="compact", hide_details=True, id="sai-volume-rendering")
            v3.VFileInput(label="Upload NIfTI / NRRD / MHA", v_model=("sai_upload", None), density="compact",
                          classes="mt-4", id="sai-upload", accept=".nii,.gz,.nrrd,.mha")
