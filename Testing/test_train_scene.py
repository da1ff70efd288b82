"""Cases from the scene (volume + segmentation nodes) and training on a background thread, as the
panel's Train section does it."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from test_train_synthetic import make_case, tiny_settings


def add_case_to_scene(scene, seed, names=("ball", "box")):
    from SurgicalAICore.geometry import array_from_sitk
    from SurgicalAICore.mrml.segmentations import add_segmentation_to_scene, new_segmentation_node
    from SurgicalAICore.mrml.volumes import add_volume_node

    case = make_case(seed)
    array, ijk_to_ras = array_from_sitk(case.images[0])
    volume = add_volume_node(scene, array, ijk_to_ras, name=f"CT{seed}")
    labels, _ = array_from_sitk(case.labels["label"])
    info = [{"value": i + 1, "name": n, "color": [0.2 * i, 0.5, 0.5]} for i, n in enumerate(names)]
    seg = add_segmentation_to_scene(scene, new_segmentation_node(labels, ijk_to_ras, info, name=f"Seg{seed}",
                                                                 closed_surface=False), volume)
    return case, volume, seg


def test_case_from_nodes_keeps_voxels_and_segment_names(scene, snapshot):
    from SegmentationAILib.cases import case_from_nodes
    from SurgicalAICore.errors import InputError
    from SegmentationAILib.label_mapping import LabelMapping

    original, volume, seg = add_case_to_scene(scene, 3)
    before = snapshot(scene)
    case = case_from_nodes([volume], seg)
    assert case.name == "CT3" and case.segment_names["segmentation"] == {1: "ball", 2: "box"}
    assert np.array_equal(case.label_array(), original.label_array())
    assert np.allclose(sitk.GetArrayFromImage(case.images[0]), sitk.GetArrayFromImage(original.images[0]))
    # classes by segment name; merging by names
    assert np.array_equal(LabelMapping.identity([case]).apply(case), original.label_array())
    merged = LabelMapping.parse(["shapes=ball,box"]).apply(case)
    assert np.array_equal(merged, (original.label_array() > 0).astype(np.uint8))
    with pytest.raises(InputError, match="segmentation"):
        case_from_nodes([volume], None)
    with pytest.raises(InputError, match="volume"):
        case_from_nodes([None], seg)
    assert snapshot(scene) == before  # reading cases changes nothing


@pytest.mark.slow
def test_background_training_job_reports_and_can_be_stopped(scene, tmp_path):
    from SegmentationAILib.cases import case_from_nodes
    from SegmentationAILib.label_mapping import LabelMapping
    from SegmentationAILib.training.job import TrainingJob

    cases = [case_from_nodes([v], s) for _, v, s in (add_case_to_scene(scene, i) for i in range(3))]
    mapping = LabelMapping.identity(cases)
    job = TrainingJob(cases[:2], mapping, tmp_path / "model", tiny_settings(epochs=2, steps_per_epoch=2),
                      val_cases=cases[2:]).start()
    job.wait(120)
    events = job.poll()
    kinds = [e["kind"] for e in events]
    assert kinds[-1] == "done" and kinds.count("epoch") == 2 and "progress" in kinds
    assert (tmp_path / "model" / "model.json").is_file() and job.curves_path.is_file()

    stopped = TrainingJob(cases[:2], mapping, tmp_path / "stopped", tiny_settings(epochs=50, steps_per_epoch=2))
    stopped.stop()  # cancelled before the first step
    stopped.start().wait(120)
    last = stopped.poll()[-1]
    assert last["kind"] == "error" and last["cancelled"] and not (tmp_path / "stopped").exists()
