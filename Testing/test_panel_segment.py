"""The Segment section's user story on a real scene: choose inputs, run, cancel half-way, run again,
results in the scene, save a .mrb, reload it, the section's settings are restored."""
import time

import pytest

from SurgicalAICore.errors import InputError
from SurgicalAICore.image_io import read_image
from SurgicalAICore.mrml.bundle import load_scene_bundle, save_scene_bundle
from SurgicalAICore.mrml.volumes import add_volume_from_sitk
from SurgicalAICore.panel.choices import Device, ModelChoice
from SegmentationAILib.panel import SegmentPanel
from SegmentationAILib.scene_segmentation import statistics_table_of


def segmentation_nodes(scene):
    return scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode")


def test_segment_story_cancel_rerun_save_reload(scene, sample_ct_path, snapshot, tmp_path):
    volume = add_volume_from_sitk(scene, read_image(sample_ct_path), name="CT")
    panel = SegmentPanel(scene)
    assert not panel.can_apply  # no input chosen yet
    panel.params.update(inputVolume=volume, device=Device.CPU, tta=False)
    assert panel.can_apply and "liver" in panel.model_summary()

    before = snapshot(scene)
    panel.apply()
    assert panel.running and not panel.can_apply
    while panel.job.fraction < 0.05 and panel.running:  # cancel once the work is under way
        time.sleep(0.01)
    panel.cancel()
    assert panel.job.wait(120)
    assert panel.job.error == "Cancelled; nothing was changed."
    assert snapshot(scene) == before and segmentation_nodes(scene) == 0

    panel.apply()
    with pytest.raises(Exception, match="still running"):
        panel.apply()  # one job at a time
    assert panel.job.wait(300) and panel.job.error is None, panel.job.error
    node = panel.params.get("outputSegmentation")
    assert node is panel.job.result and node.GetScene() is scene
    names = {node.GetSegmentation().GetNthSegment(i).GetName()
             for i in range(node.GetSegmentation().GetNumberOfSegments())}
    assert {"liver", "vertebrae"} <= names
    assert statistics_table_of(node).GetNumberOfRows() == len(names)
    assert panel.job.message.startswith("Done:")
    rows = panel.segments()  # what a view's table shows: names, colours, volumes from the statistics table
    assert {r["name"] for r in rows} == names and all(len(r["color"]) == 7 for r in rows)
    liver = next(r for r in rows if r["name"] == "liver")
    assert liver["color"] == "#" + "".join(f"{round(c * 255):02x}" for c in
                                           node.GetSegmentation().GetSegment(liver["id"]).GetColor())
    assert sum(r["volume_ml"] for r in rows) > 100 and liver["volume_ml"] > 0
    assert panel.status() == {"running": False, "state": "done", "fraction": 1.0, "message": panel.job.message,
                              "error": None, "can_apply": True, "can_apply_sequence": False,
                              "notes": []}

    path = save_scene_bundle(scene, tmp_path / "story.mrb")
    reloaded = load_scene_bundle(path)
    again = SegmentPanel(reloaded)
    values = again.params.values()
    assert values["inputVolume"].GetName() == "CT" and values["inputVolume"].GetScene() is reloaded
    assert values["outputSegmentation"].GetName() == node.GetName()
    assert values["device"] is Device.CPU and values["tta"] is False and values["model"] is ModelChoice.BUNDLED
    assert reloaded.GetNumberOfNodesByClass("vtkMRMLScriptedModuleNode") == 1  # found again, not duplicated
    reloaded.Clear(1)


def test_segment_bad_model_folder_is_one_message_and_leaves_scene(scene, sample_ct_path, snapshot, tmp_path):
    volume = add_volume_from_sitk(scene, read_image(sample_ct_path), name="CT")
    panel = SegmentPanel(scene)
    panel.params.update(inputVolume=volume, model="folder", modelFolder=str(tmp_path), device="cpu")
    assert "model.json" in panel.model_summary() or str(tmp_path) in panel.model_summary()
    before = snapshot(scene)
    panel.apply()
    assert panel.job.wait(60)
    assert panel.job.error and "\n" not in panel.job.error and "Traceback" not in panel.job.error
    assert snapshot(scene) == before


def test_segment_refuses_wrong_inputs_before_any_work(scene):
    panel = SegmentPanel(scene)
    with pytest.raises(InputError, match="No input volume"):
        panel.apply()
    with pytest.raises(InputError, match="not one of"):
        panel.params.set("device", "tpu")
    label = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "labels")
    with pytest.raises(InputError, match="label map"):
        panel.params.set("inputVolume", label)  # a label map is a scalar volume: the read refuses it
        panel.apply()
    assert not panel.running


def ct_sequence(scene, sample_ct_path, values=("0", "40", "80")):
    """A sequence of three small CT items (crops of the sample CT at three heights), browsed by a browser."""
    import slicer

    ct = read_image(sample_ct_path)
    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode", "phases")
    sequence.SetIndexName("phase")
    sequence.SetIndexUnit("%")
    for n, value in enumerate(values):
        node = add_volume_from_sitk(scene, ct[20:84, 20:84, 40 + 8 * n:72 + 8 * n], name=f"item{value}")
        sequence.SetDataNodeAtValue(node, value)
        scene.RemoveNode(node)
    scene.RegisterNodeClass(slicer.vtkMRMLSequenceBrowserNode())
    browser = scene.AddNewNodeByClass("vtkMRMLSequenceBrowserNode", "browser")
    browser.SetAndObserveMasterSequenceNodeID(sequence.GetID())
    return sequence, browser


def test_segment_every_item_of_a_sequence_cancel_then_run(scene, sample_ct_path, snapshot):
    sequence, browser = ct_sequence(scene, sample_ct_path)
    panel = SegmentPanel(scene)
    assert not panel.can_apply_sequence
    panel.params.update(inputSequence=sequence, device=Device.CPU, tta=False)
    assert panel.can_apply_sequence and panel.status()["can_apply_sequence"]

    before = snapshot(scene)
    panel.apply_sequence()
    while panel.job.fraction < 0.4 and panel.running:  # cancel during the second item
        time.sleep(0.01)
    panel.cancel()
    assert panel.job.wait(300)
    assert panel.job.error == "Cancelled; nothing was changed."
    assert snapshot(scene) == before

    panel.apply_sequence()
    assert panel.job.wait(600) and panel.job.error is None, panel.job.error
    out = panel.job.result
    assert out.GetScene() is scene and out.IsA("vtkMRMLSequenceNode")
    assert [out.GetNthIndexValue(n) for n in range(out.GetNumberOfDataNodes())] == ["0", "40", "80"]
    assert out.GetIndexName() == "phase" and out.GetIndexUnit() == "%"
    for n in range(3):
        item = out.GetNthDataNode(n)
        assert item.IsA("vtkMRMLSegmentationNode") and item.GetSegmentation().GetNumberOfSegments() > 0
    table = statistics_table_of(out)
    assert table.GetNumberOfRows() == 3 and table.GetTable().GetColumnByName("liver [mL]") is not None
    # the items are different heights of the body: the liver volume is not the same in all three
    liver = [table.GetTable().GetColumnByName("liver [mL]").GetValue(r) for r in range(3)]
    assert len(set(liver)) > 1
    assert browser.IsSynchronizedSequenceNode(out.GetID(), True)
    assert panel.job.message == f"Done: '{out.GetName()}', 3 items segmented."


def test_sequence_with_a_label_map_item_is_refused_before_any_work(scene, sample_ct_path, snapshot):
    sequence, _ = ct_sequence(scene, sample_ct_path, values=("0",))
    label = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "labels")
    sequence.SetDataNodeAtValue(label, "1")
    panel = SegmentPanel(scene)
    panel.params.update(inputSequence=sequence, device=Device.CPU)
    before = snapshot(scene)
    with pytest.raises(InputError, match=r"Item 2 \(phase 1\) of sequence 'phases': .*label map"):
        panel.apply_sequence()
    assert snapshot(scene) == before and not panel.running
    empty = scene.AddNewNodeByClass("vtkMRMLSequenceNode", "empty")
    panel.params.set("inputSequence", empty)
    with pytest.raises(InputError, match="has no items"):
        panel.apply_sequence()
