"""Batch segmentation: a folder of cases -> one result per case + summary.csv; bad cases are
reported and the rest go on; exit code 2 when nothing could run; processes with --jobs."""
import csv

import numpy as np
import pytest
import SimpleITK as sitk
import slicerio

from SegmentationAILib.batch import list_cases, segment_cases
from SurgicalAICore.errors import ModelError
from SegmentationAILib.synthetic import save_tiny_model, synthetic_ct
from surgicalai.cli import main


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    model = save_tiny_model(root / "tiny").path
    folder = root / "cases"
    folder.mkdir()
    for n, size in enumerate([(40, 36, 20), (32, 40, 16)]):
        ct, _ = synthetic_ct(size, spacing=(2.0, 2.0, 4.0), seed=n)
        sitk.WriteImage(ct, str(folder / f"patient{n}.nii.gz"))
    (folder / "broken.nii.gz").write_bytes(b"not an image at all")
    sitk.WriteImage(sitk.Image(20, 20, 1, sitk.sitkInt16), str(folder / "one_slice.nrrd"))
    (folder / "notes.txt").write_text("ignored: not an image")
    return root, model, folder


def _rows(path):
    with open(path, newline="") as f:
        return {r["case"]: r for r in csv.DictReader(f)}


def test_folder_gives_results_summary_and_reports_bad_cases(cases, tmp_path, capsys):
    _, model, folder = cases
    out = tmp_path / "out"
    code = main(["segment", str(folder), "-o", str(out), "--model", str(model), "--no-tta", "--quiet"])
    assert code == 1  # some cases failed, the others were written
    rows = _rows(out / "summary.csv")
    assert sorted(rows) == ["broken", "one_slice", "patient0", "patient1"]
    for case in ("patient0", "patient1"):
        assert rows[case]["status"] == "ok"
        seg = slicerio.read_segmentation(str(out / f"{case}.seg.nrrd"))
        assert seg["voxels"].shape == sitk.ReadImage(str(folder / f"{case}.nii.gz")).GetSize()
        assert (out / f"{case}_statistics.csv").is_file()
        assert float(rows[case]["liver_ml"]) >= 0.0
    assert rows["broken"]["status"] == "failed" and "Cannot read image file" in rows["broken"]["problem"]
    assert "single slice" in rows["one_slice"]["problem"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["summary.csv", "patient0.seg.nrrd", "patient0_statistics.csv", "patient1.seg.nrrd",
         "patient1_statistics.csv"])  # nothing half-written for the bad cases
    err = capsys.readouterr().err
    assert "broken: FAILED" in err and err.count("\n") == 2


def test_nothing_runnable_is_exit_2(cases, tmp_path):
    _, model, folder = cases
    code = main(["segment", str(folder / "broken.nii.gz"), str(folder / "one_slice.nrrd"), "-o",
                 str(tmp_path / "out"), "--model", str(model), "--quiet"])
    assert code == 2
    assert {r["status"] for r in _rows(tmp_path / "out" / "summary.csv").values()} == {"failed"}


def test_bad_model_stops_before_any_case(cases, tmp_path):
    _, _, folder = cases
    with pytest.raises(ModelError):
        segment_cases([folder], tmp_path / "out", tmp_path / "no-model")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # two spawned processes each import torch and MONAI
def test_jobs_in_processes_match_one_process(cases, tmp_path):
    _, model, folder = cases
    inputs = [folder / "patient0.nii.gz", folder / "patient1.nii.gz"]
    one = segment_cases(inputs, tmp_path / "one", model, {"tta": False}, suffix=".nii.gz")
    two = segment_cases(inputs, tmp_path / "two", model, {"tta": False}, suffix=".nii.gz", jobs=2)
    assert [r.case for r in two] == ["patient0", "patient1"] and all(r.ok for r in two)
    for r1, r2 in zip(one, two, strict=True):
        a = sitk.GetArrayFromImage(sitk.ReadImage(r1.output))
        b = sitk.GetArrayFromImage(sitk.ReadImage(r2.output))
        assert np.array_equal(a, b)


def test_case_names_are_unique(tmp_path):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        sitk.WriteImage(sitk.Image(4, 4, 4, sitk.sitkInt16), str(tmp_path / sub / "ct.nii.gz"))
    names = [name for name, _ in list_cases([tmp_path / "a" / "ct.nii.gz", tmp_path / "b" / "ct.nii.gz"])]
    assert names == ["ct", "ct_2"]
