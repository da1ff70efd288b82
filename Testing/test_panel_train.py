"""The Train section's user story on a real scene: cases picked from the scene, training started, stopped
half-way, started again to the end, the model written, cases and settings restored from a .mrb."""
import time

import pytest

from SurgicalAICore.errors import InputError
from SurgicalAICore.mrml.bundle import load_scene_bundle, save_scene_bundle
from SurgicalAICore.panel.choices import Device, Modality
from SegmentationAILib.train_panel import TrainPanel
from test_train_scene import add_case_to_scene
from test_train_synthetic import tiny_settings


def _wait(panel, until, timeout=180):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        panel.poll()
        if until():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
def test_train_story_stop_restart_finish_save_reload(scene, tmp_path):
    panel = TrainPanel(scene)
    nodes = [add_case_to_scene(scene, seed)[1:] for seed in range(3)]
    with pytest.raises(InputError, match="two cases"):
        panel.start()
    for volume, segmentation in nodes:
        panel.add_case(volume, segmentation)
    with pytest.raises(InputError, match="same number of image channels"):
        panel.add_case(nodes[0][0], nodes[0][1], second=nodes[1][0])
    panel.remove_case(2)
    assert panel.case_labels() == ["CT0  |  Seg0", "CT1  |  Seg1"]
    output = tmp_path / "model"
    panel.params.update(outputFolder=str(output), device=Device.CPU, modality=Modality.CT, epochs=3,
                        validationFraction=0.5)
    tiny = tiny_settings()
    panel.advanced = {k: getattr(tiny, k) for k in ("patch_size", "unet_channels", "unet_strides", "spacing",
                                                    "augmentation", "threads", "batch_size")}
    panel.advanced["steps_per_epoch"] = 2

    panel.start()
    assert _wait(panel, lambda: panel.epochs)  # one epoch done: stop half-way
    panel.stop()
    assert _wait(panel, lambda: not panel.running and panel.error)
    assert panel.error.startswith("Training stopped") and not output.exists()

    panel.params.update(resume=True)  # the run resumes where it stopped, with its own settings
    panel.start()
    assert _wait(panel, lambda: not panel.running)
    assert panel.error is None and panel.model_path == str(output) and (output / "model.json").is_file()
    assert panel.curves_path is not None and panel.message.startswith("Model written")
    status = panel.status()
    assert status["model_path"] == str(output) and not status["running"] and status["epochs"] >= 1

    reloaded = load_scene_bundle(save_scene_bundle(scene, tmp_path / "train.mrb"))
    again = TrainPanel(reloaded)
    assert again.case_labels() == ["CT0  |  Seg0", "CT1  |  Seg1"]
    assert again.params.get("epochs") == 3 and again.params.get("resume") is True
    reloaded.Clear(1)
