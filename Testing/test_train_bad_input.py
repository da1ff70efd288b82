"""Bad input to training: each a clear one-line error, nothing written or lost."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from test_train_synthetic import make_case, tiny_settings


def tree(path: Path):
    return sorted((str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns) for p in path.rglob("*"))


def write_case_files(folder: Path, case, stem: str):
    folder.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(case.images[0], str(folder / f"{stem}_ct.nii.gz"))
    sitk.WriteImage(case.labels["label"], str(folder / f"{stem}_seg.nii.gz"))


def one_line(error) -> str:
    text = str(error.value)
    assert "\n" not in text and text
    return text


def test_mismatched_image_and_label_geometry(tmp_path):
    from SegmentationAILib.cases import cases_from_folder
    from SurgicalAICore.errors import InputError

    case = make_case(1)
    write_case_files(tmp_path, case, "a")
    label = sitk.ReadImage(str(tmp_path / "a_seg.nii.gz"))
    label.SetSpacing((2.0, 2.0, 3.0))
    sitk.WriteImage(label, str(tmp_path / "a_seg.nii.gz"))
    with pytest.raises(InputError) as error:
        cases_from_folder(tmp_path, ["*_ct.nii.gz"], ["*_seg.nii.gz"])
    assert "'a'" in one_line(error) and "spacing" in str(error.value)

    shifted = make_case(1)
    shifted.labels["label"].SetOrigin((0.0, 0.0, 0.0))
    from SegmentationAILib.cases import check_case

    with pytest.raises(InputError, match="origin"):
        check_case(shifted)


def test_empty_labels_name_the_case(tmp_path):
    from SurgicalAICore.errors import InputError
    from SegmentationAILib.label_mapping import LabelMapping
    from SegmentationAILib.training.loop import train

    cases = [make_case(s) for s in range(3)]
    empty = sitk.Image(cases[1].labels["label"])
    empty *= 0
    cases[1].labels["label"] = empty
    with pytest.raises(InputError) as error:
        train(cases, LabelMapping.parse(["ball=1", "box=2"]), tmp_path / "out", tiny_settings())
    assert "case1" in one_line(error) and "no labelled voxel" in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_class_missing_from_all_cases(tmp_path):
    from SurgicalAICore.errors import InputError
    from SegmentationAILib.label_mapping import LabelMapping
    from SegmentationAILib.training.loop import train

    cases = [make_case(s) for s in range(3)]
    with pytest.raises(InputError) as error:
        train(cases, LabelMapping.parse(["ball=1", "box=2", "cone=7"]), tmp_path / "out", tiny_settings())
    assert "'cone'" in one_line(error) and "missing from all 3 cases" in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_class_missing_from_some_cases_is_reported_not_fatal():
    from SegmentationAILib.label_mapping import LabelMapping, check_mapping

    cases = [make_case(s) for s in range(3)]
    lab = sitk.GetArrayFromImage(cases[2].labels["label"])
    lab[lab == 2] = 0
    img = sitk.GetImageFromArray(lab)
    img.CopyInformation(cases[2].images[0])
    cases[2].labels["label"] = img
    report = check_mapping(LabelMapping.parse(["ball=1", "box=2"]), cases)
    assert report.present["case2"] == ["ball"]
    assert len(report.problems) == 1 and "'box'" in report.problems[0] and "case2" in report.problems[0]


def test_single_case_with_kfold(tmp_path):
    from SurgicalAICore.errors import InputError
    from SegmentationAILib.label_mapping import LabelMapping
    from SegmentationAILib.training.loop import train, train_folds

    with pytest.raises(InputError) as error:
        train([make_case(0)], LabelMapping.parse(["ball=1"]), tmp_path / "out", tiny_settings(folds=5))
    assert "5-fold" in one_line(error) and "got 1" in str(error.value)
    with pytest.raises(InputError):
        train_folds([make_case(0)], LabelMapping.parse(["ball=1"]), tmp_path / "out", tiny_settings(folds=2))
    assert list(tmp_path.iterdir()) == []


def test_kfold_folds_are_disjoint_and_cover_all_cases():
    from SegmentationAILib.training.loop import split_cases

    names = [f"c{i}" for i in range(11)]
    vals = []
    for fold in range(4):
        train, val = split_cases(names, folds=4, fold=fold, seed=3)
        assert not set(train) & set(val) and len(train) + len(val) == 11
        vals.append(set(val))
    assert set().union(*vals) == set(range(11)) and sum(len(v) for v in vals) == 11
    train, val = split_cases(names, val_fraction=0.2, seed=1)
    assert len(val) == 2 and not set(train) & set(val)


def test_existing_output_folder_is_never_overwritten(tmp_path):
    from SurgicalAICore.errors import InputError
    from SegmentationAILib.label_mapping import LabelMapping
    from SegmentationAILib.training.loop import train

    out = tmp_path / "model"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    before = tree(tmp_path)
    with pytest.raises(InputError) as error:
        train([make_case(0), make_case(1)], LabelMapping.parse(["ball=1"]), out, tiny_settings())
    assert "already exists" in one_line(error)
    assert tree(tmp_path) == before


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores folder permissions")
def test_unwritable_output_folder(tmp_path):
    from SurgicalAICore.errors import InputError
    from SegmentationAILib.label_mapping import LabelMapping
    from SegmentationAILib.training.loop import train

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(InputError) as error:
            train([make_case(0), make_case(1)], LabelMapping.parse(["ball=1"]), locked / "model", tiny_settings())
        assert "Cannot write" in one_line(error)
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_unwritable_output_folder_as_root_too(tmp_path):
    """Where permissions do not stop us (root), a path under a regular file cannot be created either."""
    from SurgicalAICore.errors import InputError
    from SegmentationAILib.label_mapping import LabelMapping
    from SegmentationAILib.training.loop import train

    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    with pytest.raises(InputError) as error:
        train([make_case(0), make_case(1)], LabelMapping.parse(["ball=1"]), blocker / "model", tiny_settings())
    assert "Cannot write" in one_line(error)
    assert blocker.read_text() == "not a folder"


def test_corrupt_checkpoint_is_a_clear_error_and_kept(tmp_path):
    from SurgicalAICore.errors import ModelError
    from SegmentationAILib.label_mapping import LabelMapping
    from SegmentationAILib.training.loop import CHECKPOINT, train

    cases = [make_case(s) for s in range(3)]
    mapping = LabelMapping.parse(["ball=1"])
    train(
        cases[:2],
        mapping,
        tmp_path / "model",
        tiny_settings(epochs=2, steps_per_epoch=2),
        val_cases=cases[2:],
        max_steps=3,
    )
    ckpt = tmp_path / "model.training" / CHECKPOINT
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 3])
    before = tree(tmp_path)
    with pytest.raises(ModelError) as error:
        train(
            cases[:2],
            mapping,
            tmp_path / "model",
            tiny_settings(epochs=2, steps_per_epoch=2),
            val_cases=cases[2:],
            resume=True,
        )
    assert "corrupt" in one_line(error) and CHECKPOINT in str(error.value)
    assert tree(tmp_path) == before


def test_existing_run_needs_resume_and_resume_needs_a_run(tmp_path):
    from SurgicalAICore.errors import InputError
    from SegmentationAILib.label_mapping import LabelMapping
    from SegmentationAILib.training.loop import train

    cases = [make_case(s) for s in range(3)]
    mapping = LabelMapping.parse(["ball=1"])
    with pytest.raises(InputError, match="Nothing to resume"):
        train(cases, mapping, tmp_path / "model", tiny_settings(), resume=True)
    train(cases[:2], mapping, tmp_path / "model", tiny_settings(epochs=2, steps_per_epoch=2), max_steps=2)
    with pytest.raises(InputError, match="resume it"):
        train(cases[:2], mapping, tmp_path / "model", tiny_settings(epochs=2, steps_per_epoch=2))


def test_channel_count_must_match_for_finetuning_and_between_cases(tmp_path):
    from SurgicalAICore.errors import InputError
    from SegmentationAILib.label_mapping import LabelMapping, check_mapping

    a, b = make_case(0), make_case(1)
    b.images.append(sitk.Image(b.images[0]))
    with pytest.raises(InputError, match="same number of image channels"):
        check_mapping(LabelMapping.parse(["ball=1"]), [a, b])


def test_cancel_keeps_the_last_epoch_for_resuming(tmp_path):
    from SurgicalAICore.errors import OperationCancelled
    from SegmentationAILib.label_mapping import LabelMapping
    from SurgicalAICore.progress import CancelToken
    from SegmentationAILib.training.loop import CHECKPOINT, train

    cases = [make_case(s) for s in range(3)]
    token = CancelToken()
    seen = []

    def progress(f, m):
        seen.append(m)
        if "step 3/" in m:
            token.cancel()

    with pytest.raises(OperationCancelled, match="resume"):
        train(
            cases[:2],
            LabelMapping.parse(["ball=1"]),
            tmp_path / "model",
            tiny_settings(epochs=3, steps_per_epoch=2),
            val_cases=cases[2:],
            progress=progress,
            cancel=token,
        )
    assert not (tmp_path / "model").exists()
    assert (tmp_path / "model.training" / CHECKPOINT).is_file()


def test_label_mapping_text_and_errors():
    from SurgicalAICore.errors import InputError
    from SegmentationAILib.label_mapping import parse_class

    spec = parse_class("whole_tumour=OTMultiClass:1-4")
    assert spec.name == "whole_tumour" and spec.source == "OTMultiClass" and spec.values == [1, 2, 3, 4]
    assert parse_class("liver=liver,3").values == ["liver", 3]
    for bad in ("tumour", "=1", "x=0", "x=4-1", "x="):
        with pytest.raises(InputError):
            parse_class(bad)


def test_merging_and_painting_order():
    """BRATS style: brain from one label image, whole tumour (1-4 merged) painted over it."""
    from SegmentationAILib.cases import Case
    from SegmentationAILib.label_mapping import LabelMapping

    tumour = np.zeros((4, 4, 4), np.uint8)
    tumour[1, 1, 1:4] = [1, 2, 4]
    brain = np.zeros((4, 4, 4), np.uint8)
    brain[:, :, :3] = 1
    img = sitk.GetImageFromArray(np.zeros((4, 4, 4), np.float32))
    labels = {}
    for key, arr in (("OTMultiClass", tumour), ("brainmask", brain)):
        im = sitk.GetImageFromArray(arr)
        im.CopyInformation(img)
        labels[key] = im
    case = Case("p", [img], labels)
    out = LabelMapping.parse(["brain=brainmask:1", "whole_tumour=OTMultiClass:1-4"]).apply(case)
    assert out[1, 1, 1] == out[1, 1, 2] == out[1, 1, 3] == 2
    assert (out == 1).sum() == brain.sum() - 2  # tumour voxels inside the brain were painted over
    with pytest.raises(Exception, match="label source"):
        LabelMapping.parse(["brain=1"]).apply(case)


def test_cases_from_folders_and_lists(tmp_path):
    import json

    from SegmentationAILib.cases import cases_from_folder, cases_from_list, collect_cases
    from SurgicalAICore.errors import InputError

    flat = tmp_path / "flat"
    for s in range(2):
        write_case_files(flat, make_case(s), f"pt{s}")
    cases = cases_from_folder(flat, ["*_ct.nii.gz"], ["*_seg.nii.gz"])
    assert [c.name for c in cases] == ["pt0", "pt1"] and list(cases[0].labels) == ["seg"]
    per_case = tmp_path / "nested"
    for s in range(2):
        d = per_case / f"subject{s}"
        write_case_files(d, make_case(s), "x")
        sitk.WriteImage(make_case(s).images[0], str(d / "t1_extra.nii.gz"))
    nested = cases_from_folder(per_case, ["x_ct*", "t1_*"], ["x_seg*"])
    assert [c.name for c in nested] == ["subject0", "subject1"] and len(nested[0].images) == 2
    (tmp_path / "list.csv").write_text("name,image,label\nA,flat/pt0_ct.nii.gz,flat/pt0_seg.nii.gz\n")
    (tmp_path / "list.json").write_text(
        json.dumps([{"name": "B", "images": ["flat/pt1_ct.nii.gz"], "label": "flat/pt1_seg.nii.gz"}])
    )
    both = collect_cases([tmp_path / "list.csv", tmp_path / "list.json"], [], [])
    assert [c.name for c in both] == ["A", "B"]
    assert np.array_equal(both[0].label_array(), cases[0].label_array())
    with pytest.raises(InputError, match="unique"):
        collect_cases([tmp_path / "list.csv", tmp_path / "list.csv"], [], [])
    (flat / "pt1_seg.nii.gz").unlink()
    with pytest.raises(InputError, match="pt1"):
        cases_from_folder(flat, ["*_ct.nii.gz"], ["*_seg.nii.gz"])
    (tmp_path / "broken.nii.gz").write_bytes(b"not an image")
    (tmp_path / "bad.csv").write_text("name,image,label\nC,broken.nii.gz,broken.nii.gz\n")
    with pytest.raises(InputError, match="cannot read"):
        cases_from_list(tmp_path / "bad.csv")
