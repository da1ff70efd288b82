"""The Depth section's user stories on a real scene: process a recorded source (cancel half-way, run again),
results shown and kept as references, live on a recorded sequence (read on the GUI thread), .mrb round trip."""
import time

import cv2
import numpy as np
import pytest

from SurgicalAICore.mrml.bundle import load_scene_bundle, save_scene_bundle
from SurgicalAICore.panel.choices import Device
from SurgicalDepthLib.panel.depth_panel import DepthPanel, SourceType


@pytest.fixture
def frames(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        rgb = (rng.random((64, 80, 3)) * 60 + 80 + 10 * i).astype(np.uint8)
        cv2.imwrite(str(folder / f"f{i}.png"), rgb)
    return folder


def test_process_all_story_cancel_rerun_show_save_reload(scene, frames, snapshot, tmp_path):
    views = [scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode") for _ in range(2)]
    views[0].SetLayoutName("Red")
    views[1].SetLayoutName("Yellow")
    panel = DepthPanel(scene)
    panel.params.update(sourceType=SourceType.FOLDER, frameFolder=str(frames), device=Device.CPU, pointBudget=500)

    before = snapshot(scene)
    panel.process_all()
    panel.cancel()  # at once: the worker stops at its next step
    assert panel.job.wait(120) and panel.job.error == "Cancelled; nothing was changed."
    assert snapshot(scene) == before

    panel.process_all()
    assert panel.job.wait(120) and panel.job.error is None, panel.job.error
    summary = panel.job.result
    assert summary.frames == 6 and panel.job.message.startswith("6 frames processed")
    cloud, video, depth = (panel.params.get(n) for n in ("cloudNode", "videoNode", "depthNode"))
    assert cloud.GetPolyData().GetNumberOfPoints() > 0 and cloud.GetScene() is scene
    assert cloud.GetParentTransformNode() is panel.params.get("resultTransform")
    assert views[0].GetBackgroundVolumeID() == video.GetID()  # shown, not only added
    assert views[1].GetBackgroundVolumeID() == depth.GetID()

    reloaded = load_scene_bundle(save_scene_bundle(scene, tmp_path / "depth.mrb"))
    again = DepthPanel(reloaded)
    assert again.params.get("sourceType") is SourceType.FOLDER and again.params.get("pointBudget") == 500
    assert again.params.get("cloudNode").GetName() == cloud.GetName()
    reloaded.Clear(1)


def test_frame_limit_and_stepping_through_the_run(scene, frames):
    from SurgicalAICore.mrml.volumes import array_from_image_data

    panel = DepthPanel(scene)
    assert panel.frame_count() == 0 and panel.select_frame(3) == 0  # nothing to step through yet
    panel.params.update(sourceType=SourceType.FOLDER, frameFolder=str(frames), device=Device.CPU, pointBudget=300,
                        maxFrames=4)
    panel.process_all()
    assert panel.job.wait(120) and panel.job.error is None, panel.job.error
    assert panel.job.result.frames == 4 and panel.frame_count() == 4
    video, cloud = panel.params.get("videoNode"), panel.params.get("cloudNode")
    first_points = cloud.GetPolyData().GetNumberOfPoints()
    brightness = []
    for index in (0, 2, 9):
        shown = panel.select_frame(index)
        brightness.append(array_from_image_data(video.GetImageData()).mean())
        assert shown == min(index, 3)
    # the frames grow brighter by 10 per index: the proxies follow the chosen frame (9 is clamped to 3)
    assert brightness[1] - brightness[0] == pytest.approx(20, abs=3)
    assert brightness[2] - brightness[0] == pytest.approx(30, abs=3)
    assert cloud.GetPolyData().GetNumberOfPoints() > 0 and first_points > 0
    panel.params.set("maxFrames", -1)
    with pytest.raises(Exception, match="frame limit"):
        panel.process_all()


def test_live_on_a_recorded_sequence_then_failure_leaves_it_stopped(scene, frames):
    panel = DepthPanel(scene)
    panel.params.update(sourceType="folder", frameFolder=str(frames), device="cpu", pointBudget=300)
    panel.process_all()
    assert panel.job.wait(120) and panel.job.error is None, panel.job.error
    browser = scene.GetFirstNodeByClass("vtkMRMLSequenceBrowserNode")

    panel.params.update(sourceType=SourceType.SEQUENCE, sequence=browser)
    panel.start_live()  # the sequence's frames are taken here; the feeder thread never reads MRML
    assert panel.live_running
    end, stats = time.monotonic() + 60, None
    while time.monotonic() < end and not (stats and stats.shown):
        stats = panel.poll()
        time.sleep(0.02)
    assert stats is not None and stats.shown > 0
    live_cloud = panel.params.get("cloudNode")
    assert live_cloud is panel.session.output.cloud_node
    panel.stop_live()
    assert not panel.live_running and panel.live_message.startswith("Stopped")
    assert panel.status()["live_message"] == panel.live_message and " fps | " in panel.status()["stats"]

    panel.params.update(sourceType=SourceType.FILE, videoFile="")
    with pytest.raises(Exception, match="Choose the file"):
        panel.start_live()
    assert not panel.live_running  # the view's toggle reads this, so it never stays pressed


def test_adapt_refuses_clearly_and_leaves_the_scene(scene, frames, snapshot, tmp_path):
    """Adapt to this video: each missing input is one line; nothing starts and the scene is unchanged."""
    from SurgicalAICore.errors import InputError
    from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics
    from SurgicalDepthLib.panel.depth_panel import StereoLayout

    panel = DepthPanel(scene)
    panel.params.update(sourceType=SourceType.FOLDER, frameFolder=str(frames), device=Device.CPU)
    def nodes():  # the section's own parameter node changes with each choice made below
        return [n for n in snapshot(scene) if n[1] != "vtkMRMLScriptedModuleNode"]

    before = nodes()
    with pytest.raises(InputError, match="output folder"):
        panel.adapt()
    panel.params.set("outputFolder", str(tmp_path / "out"))
    with pytest.raises(InputError, match="camera intrinsics"):
        panel.adapt()
    panel.session.camera = CameraIntrinsics.from_fov(80, 64, 60.0)
    panel.params.set("stereoLayout", StereoLayout.SBS)
    with pytest.raises(InputError, match="stereo-teach"):
        panel.adapt()
    assert not panel.job.running and nodes() == before and not (tmp_path / "out").exists()
