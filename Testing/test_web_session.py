"""The web face's Qt-free session layer on a real MRML scene: bad cases change nothing, segmentation
runs in a worker thread, Cancel leaves the scene as it was, results are adopted and saved in the data
folder only."""
from __future__ import annotations

import shutil

import pytest

from SurgicalAICore.errors import InputError

pytest.importorskip("aiohttp")
from surgicalai.web.security import DataRoot
from surgicalai.web.session import PlanningSession


@pytest.fixture
def session(scene, tmp_path, sample_ct_path):
    shutil.copy(sample_ct_path, tmp_path / "case.nii.gz")
    (tmp_path / "broken.nrrd").write_bytes(b"NRRD0004\ngarbage")
    (tmp_path / "dicom").mkdir()
    (tmp_path / "dicom" / "a.dcm").write_text("not dicom")
    return PlanningSession(scene, DataRoot.of(tmp_path))


def test_bad_cases_leave_the_scene_unchanged(session, snapshot):
    before = snapshot(session.scene)
    bad = (("broken.nrrd", "Cannot read"), ("dicom", "No DICOM series"), ("missing.nii.gz", "does not exist"),
           ("../x.nii.gz", "outside"))
    for path, why in bad:
        with pytest.raises(InputError, match=why):
            session.load_case(path)
    assert snapshot(session.scene) == before


def test_segmentation_cancel_then_complete(session, snapshot, tmp_path):
    volume = session.load_case("case.nii.gz")
    assert session.models()[0]["key"] == "bundled"
    before = snapshot(session.scene)
    job = session.start_segmentation(volume.GetID(), "bundled", {"tta": False})
    job.cancel()
    assert job.wait(120)["state"] == "cancelled"
    assert snapshot(session.scene) == before and session.segmentation_node is None

    fractions = []
    job = session.start_segmentation(volume.GetID(), "bundled", {"tta": False})
    while job.running:
        fractions.append(job.poll()["fraction"])
        job.wait(0.05)
    assert job.poll()["state"] == "done", job.poll()
    assert any(0 < f < 1 for f in fractions)
    segments = session.segments()
    assert len(segments) == 9 and {s["name"] for s in segments} >= {"liver", "spleen"}
    assert all(s["color"].startswith("#") and len(s["color"]) == 7 for s in segments)
    assert sum(s["volume_ml"] for s in segments) > 100
    node = session.segmentation_node
    assert node.GetScene() is session.scene and node.GetDisplayNode() is not None
    assert node.GetSegmentation().ContainsRepresentation("Closed surface")

    assert session.save_segmentation() == "results/segmentation.seg.nrrd"
    assert session.save_scene() == "results/scene.mrb"
    assert (tmp_path / "results" / "scene.mrb").stat().st_size > 10000
    with pytest.raises(InputError, match="plain file name"):
        session.save_scene("../escape.mrb")


def test_one_job_at_a_time(session):
    volume = session.load_case("case.nii.gz")
    job = session.start_segmentation(volume.GetID(), "bundled", {"tta": False})
    with pytest.raises(InputError, match="already running"):
        session.start_segmentation(volume.GetID(), "bundled", {})
    job.cancel()
    job.wait(120)
    with pytest.raises(InputError, match="not a model folder"):
        session.start_segmentation(volume.GetID(), "dicom", {})


def test_endoscopy_session_refuses_bad_sources(scene, tmp_path, snapshot):
    from surgicalai.web.session_endoscopy import EndoscopySession

    (tmp_path / "frames").mkdir()
    for k in range(2):
        (tmp_path / "frames" / f"{k}.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "clip.mp4").write_bytes(b"\x00\x00\x00\x1cftypisom")
    (tmp_path / "notes.txt").write_text("x")
    endo = EndoscopySession(scene, DataRoot.of(tmp_path))
    assert endo.sources() == ["clip.mp4", "frames"]
    before = snapshot(scene)
    for source, frames, why in (("", 5, "Choose a video"), ("notes.txt", 5, "not a video"),
                                ("../clip.mp4", 5, "outside"), ("clip.mp4", 0, "between 1 and 200")):
        with pytest.raises(InputError, match=why):
            endo.start_depth(source, frames)
    job = endo.start_depth("clip.mp4", 2, device="cpu").start()  # an unreadable video: a message, no nodes
    assert job.wait(60)["state"] == "failed" and snapshot(scene) == before
    with pytest.raises(InputError, match="Run depth"):
        endo.register(0, "global")
