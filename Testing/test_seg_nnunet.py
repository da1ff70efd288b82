"""nnU-Net v2 result folders: parity with nnU-Net's own predictor, the card read from the plans,
integrity/safety, and every way a folder can be incomplete or wrong."""

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
import torch

pytest.importorskip("nnunetv2", reason="nnunetv2 (a test dependency in pyproject's dev extra) is not installed")

from nnunet_builder import DATASET, build_result_folder, synthetic_case
from SurgicalAICore.errors import InputError, ModelError
from SegmentationAILib.formats.checksums import RECORD_NAME
from SegmentationAILib.seg_model import load_segmentation_model, model_summary
from SegmentationAILib.segmenter import segment_image

SPACING = (2.5, 1.0, 1.0)  # the plans' spacing (x coarse: nnU-Net transposes it to the first axis)


@pytest.fixture(scope="session")
def nnunet_root(tmp_path_factory):
    """nnU-Net's fingerprint, planner and preprocessor on 3 small cases, then 2 folds x 40 training steps of a
    4-16 feature network."""
    root = tmp_path_factory.mktemp("nnunet")
    build_result_folder(root, "3d_fullres", folds=(0, 1))
    return root


@pytest.fixture(scope="session")
def fullres(nnunet_root):
    return nnunet_root / "results" / DATASET / "nnUNetTrainer__nnUNetPlans__3d_fullres"


def _copy(folder, tmp_path):
    out = tmp_path / folder.name
    shutil.copytree(folder, out)
    (out / RECORD_NAME).unlink(missing_ok=True)
    return out


def _reference(folder, image, folds):
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    predictor = nnUNetPredictor(
        tile_step_size=0.5,
        use_gaussian=True,
        use_mirroring=True,
        perform_everything_on_device=False,
        device=torch.device("cpu"),
        verbose=False,
        allow_tqdm=False,
    )
    predictor.initialize_from_trained_model_folder(str(folder), use_folds=folds)
    array = sitk.GetArrayFromImage(image)[None].astype(np.float32)
    return predictor.predict_single_npy_array(array, {"spacing": list(reversed(image.GetSpacing()))})


def _dice(a, b):
    return 2.0 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1)


def _check_parity(folder, folds, shape_kji):
    image, truth = synthetic_case(np.random.default_rng(99), shape_kji, SPACING)
    reference = _reference(folder, image, folds)
    ours = sitk.GetArrayFromImage(segment_image(image, folder, {"device": "cpu"}))
    truth = sitk.GetArrayFromImage(truth)
    # the networks learned the task (parity of two empty maps would prove nothing) ...
    assert _dice(reference == 1, truth == 1) > 0.6
    for value in (1, 2):
        if np.count_nonzero(reference == value) or np.count_nonzero(ours == value):
            # ... and this extension's path gives nnU-Net's label map
            assert _dice(ours == value, reference == value) >= 0.99, value


def test_parity_with_nnunet_predictor_two_folds(fullres):
    _check_parity(fullres, (0, 1), (46, 44, 30))  # larger than the patch: several overlapping windows


def test_parity_2d_configuration(nnunet_root):
    folder = build_result_folder(nnunet_root, "2d", folds=(0,), steps=60)
    _check_parity(folder, (0,), (34, 44, 30))


def test_card_follows_plans_and_dataset(fullres):
    model = load_segmentation_model(fullres, device="cpu")
    plans = json.loads((fullres / "plans.json").read_text())
    config = plans["configurations"]["3d_fullres"]
    assert plans["transpose_forward"] == [2, 0, 1]  # the test really exercises nnU-Net's axis transposition
    assert model.card["spacing"] == pytest.approx(list(SPACING))
    assert sorted(model.card["patch_size"]) == sorted(config["patch_size"])
    assert [(e["value"], e["name"]) for e in model.labels] == [(1, "liver"), (2, "kidney_left")]
    assert model.card["folds"] == ["fold_0", "fold_1"] and model.card["normalization"][0]["type"] == "ct"
    assert model.card["mirror_axes_ijk"] == [0, 1, 2] and len(model.network.flips) == 8
    assert "nnU-Net" in model_summary(fullres)


def test_checksums_recorded_then_verified(fullres, tmp_path):
    folder = _copy(fullres, tmp_path)
    load_segmentation_model(folder, device="cpu")
    record = (folder / RECORD_NAME).read_text()
    assert "fold_0/checkpoint_final.pth" in record and "plans.json" in record
    load_segmentation_model(folder, device="cpu")  # verified the second time
    with open(folder / "fold_1" / "checkpoint_final.pth", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelError, match="SHA-256"):
        load_segmentation_model(folder, device="cpu")


class Payload:
    """Any class a pickle names needs code to rebuild it; the loader must refuse."""

    def __reduce__(self):
        return (print, ("this would have run",))


def test_refuses_pickle_that_needs_code(fullres, tmp_path):
    folder = _copy(fullres, tmp_path)
    path = folder / "fold_0" / "checkpoint_final.pth"
    checkpoint = torch.load(str(path), weights_only=False)
    checkpoint["logging"] = Payload()
    torch.save(checkpoint, str(path))
    with pytest.raises(ModelError, match="arbitrary code"):
        load_segmentation_model(folder, device="cpu")


def test_incomplete_folders_fail_with_one_line(fullres, tmp_path):
    no_plans = _copy(fullres, tmp_path / "a")
    (no_plans / "plans.json").unlink()
    with pytest.raises(ModelError, match=r"no plans.json"):
        load_segmentation_model(no_plans, device="cpu")
    no_fold = _copy(fullres, tmp_path / "b")
    for fold in no_fold.glob("fold_*"):
        shutil.rmtree(fold)
    with pytest.raises(ModelError, match=r"no fold_\*/checkpoint_final.pth"):
        load_segmentation_model(no_fold, device="cpu")
    other = _copy(fullres, tmp_path / "c")
    path = other / "fold_1" / "checkpoint_final.pth"
    checkpoint = torch.load(str(path), weights_only=False)
    checkpoint["init_args"]["configuration"] = "2d"
    torch.save(checkpoint, str(path))
    with pytest.raises(ModelError, match="another configuration"):
        load_segmentation_model(other, device="cpu")


def test_plans_naming_unknown_components_are_refused(fullres, tmp_path):
    folder = _copy(fullres, tmp_path)
    plans = json.loads((folder / "plans.json").read_text())
    plans["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]["nonlin"] = "os.system"
    (folder / "plans.json").write_text(json.dumps(plans))
    with pytest.raises(ModelError, match=r"unknown component 'os\.system'"):
        load_segmentation_model(folder, device="cpu")
    dataset = json.loads((folder / "dataset.json").read_text())
    dataset["labels"] = {"background": 0, "whole": [1, 2], "core": 2}
    (folder / "dataset.json").write_text(json.dumps(dataset))
    (folder / RECORD_NAME).unlink(missing_ok=True)
    with pytest.raises(ModelError, match="region-based"):
        load_segmentation_model(folder, device="cpu")


def test_wrong_channel_count_is_an_input_error(fullres):
    image, _ = synthetic_case(np.random.default_rng(3), (30, 30, 20), SPACING)
    with pytest.raises(InputError, match="expects 1 input channel"):
        segment_image([image, image], fullres, {"device": "cpu"})


def test_checkpoint_best_is_used_where_final_is_absent(fullres, tmp_path):
    folder = _copy(fullres, tmp_path)
    for fold in folder.glob("fold_*"):
        (fold / "checkpoint_final.pth").rename(fold / "checkpoint_best.pth")
    best = load_segmentation_model(folder, device="cpu")
    final = load_segmentation_model(fullres, device="cpu")
    x = torch.randn(1, 1, *reversed(final.card["patch_size"]))
    with torch.no_grad():
        assert torch.equal(best.network(x), final.network(x))
    assert "fold_0/checkpoint_best.pth" in (folder / RECORD_NAME).read_text()
