"""The web face's own layer on a real MRML scene and a real trame state: the data folder (bad cases change
nothing, saves stay in results/, sources and models are listed from it) and the binding of the shared panel
logic's parameter node to the page's state, both ways, with refused values set back."""
from __future__ import annotations

import shutil
import uuid

import pytest

from SurgicalAICore.errors import InputError
from SurgicalAICore.panel.choices import Device

pytest.importorskip("aiohttp")
pytest.importorskip("trame_server")
from surgicalai.web.security import DataRoot
from surgicalai.web.workspace import Workspace


@pytest.fixture
def workspace(scene, tmp_path, sample_ct_path):
    shutil.copy(sample_ct_path, tmp_path / "case.nii.gz")
    (tmp_path / "broken.nrrd").write_bytes(b"NRRD0004\ngarbage")
    (tmp_path / "dicom").mkdir()
    (tmp_path / "dicom" / "a.dcm").write_text("not dicom")
    return Workspace(scene, DataRoot.of(tmp_path))


def test_bad_cases_leave_the_scene_unchanged(workspace, snapshot):
    before = snapshot(workspace.scene)
    bad = (("broken.nrrd", "Cannot read"), ("dicom", "No DICOM series"), ("missing.nii.gz", "does not exist"),
           ("../x.nii.gz", "outside"))
    for path, why in bad:
        with pytest.raises(InputError, match=why):
            workspace.load_case(path)
    assert snapshot(workspace.scene) == before
    volume = workspace.load_case("case.nii.gz")
    assert volume.GetName() == "case" and workspace.volumes() == [{"id": volume.GetID(), "name": "case"}]


def test_models_sources_and_saves_stay_in_the_data_folder(workspace, tmp_path):
    assert workspace.models()[0]["key"] == "bundled"
    with pytest.raises(InputError, match="not a model folder"):
        workspace.model_folder("dicom")
    with pytest.raises(InputError, match="outside"):
        workspace.model_folder("..")
    (tmp_path / "frames").mkdir()
    for k in range(2):
        (tmp_path / "frames" / f"{k}.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "clip.mp4").write_bytes(b"\x00\x00\x00\x1cftypisom")
    (tmp_path / "notes.txt").write_text("x")
    assert workspace.video_sources() == ["clip.mp4", "frames"]
    with pytest.raises(InputError, match="no segmentation"):
        workspace.save_segmentation(None)
    with pytest.raises(InputError, match="plain file name"):
        workspace.save_scene("../escape.mrb")
    workspace.load_case("case.nii.gz")
    assert workspace.save_scene() == "results/scene.mrb"
    assert (tmp_path / "results" / "scene.mrb").stat().st_size > 10000  # the case is in it


def test_the_page_state_binds_the_shared_segment_panel(workspace):
    from trame.app import get_server

    from SegmentationAILib.panel import SegmentPanel
    from surgicalai.web.binding import StateBinding

    scene = workspace.scene
    volume = workspace.load_case("case.nii.gz")
    panel = SegmentPanel(scene)
    state = get_server(f"binding-{uuid.uuid4().hex}", client_type="vue3").state
    state.ready()
    errors: list[str] = []
    binding = StateBinding(state, panel.params, {"sai_volume_id": "inputVolume", "sai_device": "device",
                                                 "sai_tta": "tta"}, on_error=errors.append)
    state.flush()
    assert (state.sai_volume_id, state.sai_device, state.sai_tta) == (None, "auto", True)  # the panel's defaults

    panel.params.update(inputVolume=volume, tta=False)  # an action, a job or a loaded scene changes the node
    state.flush()
    assert (state.sai_volume_id, state.sai_tta) == (volume.GetID(), False)

    state.sai_device = "cpu"  # a page's edit reaches the node the Slicer face reads
    state.flush()
    assert panel.params.get("device") is Device.CPU and panel.can_apply

    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "not a volume")
    for var, value, why in (("sai_device", "tpu", "not one of"), ("sai_volume_id", segmentation.GetID(), "not a")):
        state[var] = value
        state.flush()
        assert why in errors[-1]
        assert state[var] == {"sai_device": "cpu", "sai_volume_id": volume.GetID()}[var]  # set back
    assert panel.params.get("device") is Device.CPU and panel.params.get("inputVolume") is volume
    binding.release()


def test_a_bad_video_changes_nothing(workspace, tmp_path, snapshot):
    from SurgicalDepthLib.panel.depth_panel import DepthPanel

    (tmp_path / "clip.mp4").write_bytes(b"\x00\x00\x00\x1cftypisom")
    (tmp_path / "notes.txt").write_text("x")
    for source, frames, why in (("", 5, "Choose a video"), ("notes.txt", 5, "not a video"),
                                ("../clip.mp4", 5, "outside"), ("clip.mp4", 0, "between 1 and 200")):
        with pytest.raises(InputError, match=why):
            workspace.depth_source(source, frames)
    scene = workspace.scene
    depth = DepthPanel(scene, show_in_views=False)  # what the web's endoscopy panel binds
    depth.params.update(device="cpu", **workspace.depth_source("clip.mp4", 2))
    before = snapshot(scene)
    with pytest.raises(InputError, match=r"clip\.mp4"):
        depth.process_all()  # an unreadable video is refused where it is opened: one line, nothing started
    assert snapshot(scene) == before and depth.frame_count() == 0 and not depth.job.running
