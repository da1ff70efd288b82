"""``surgicalai segment``: outputs (.seg.nrrd / .nii.gz + statistics CSV) and one-line errors with exit code 2."""

import csv
import os
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
import slicerio

from SegmentationAILib.synthetic import save_tiny_model, synthetic_ct
from surgicalai.cli import main


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    model = save_tiny_model(root / "tiny").path
    ct, _ = synthetic_ct((40, 36, 20), spacing=(2.0, 2.0, 4.0))
    ct_path = root / "ct.nii.gz"
    sitk.WriteImage(ct, str(ct_path))
    return root, model, ct_path, ct


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_segment_to_seg_nrrd_and_csv(setup, tmp_path, capsys):
    _, model, ct_path, _ct = setup
    out = tmp_path / "result.seg.nrrd"
    assert (
        main(["segment", str(ct_path), "-o", str(out), "--model", str(model), "--device", "cpu", "--no-tta", "--quiet"])
        == 0
    )
    seg = slicerio.read_segmentation(str(out))
    names = [s["name"] for s in seg["segments"]]
    assert names == ["liver", "spleen", "kidney_right", "kidney_left", "vertebrae"]
    rows = read_csv(tmp_path / "result_statistics.csv")
    assert [r["name"] for r in rows] == names
    # voxel counts in the CSV are those of the written segmentation
    voxels = seg["voxels"]
    for row, segment in zip(rows, seg["segments"], strict=False):
        assert int(row["voxels"]) == int(np.count_nonzero(voxels == segment["labelValue"]))
        assert float(row["volume_ml"]) == pytest.approx(int(row["voxels"]) * 2 * 2 * 4 / 1000, abs=1e-3)
    assert "statistics" in capsys.readouterr().out


def test_segment_to_label_nifti_on_the_input_grid(setup, tmp_path):
    _, model, ct_path, ct = setup
    out = tmp_path / "labels.nii.gz"
    assert (
        main(
            [
                "segment",
                str(ct_path),
                "-o",
                str(out),
                "--model",
                str(model),
                "--device",
                "cpu",
                "--quiet",
                "--clahe",
                "--denoise",
            ]
        )
        == 0
    )
    labels = sitk.ReadImage(str(out))
    assert labels.GetSize() == ct.GetSize() and np.allclose(labels.GetSpacing(), ct.GetSpacing())
    assert (tmp_path / "labels_statistics.csv").is_file()


def error_cases(root, model, ct_path, tmp_path):
    return {
        "missing input": [str(root / "nothing.nii.gz"), "-o", str(tmp_path / "o.seg.nrrd"), "--model", str(model)],
        "unwritable output": [str(ct_path), "-o", str(tmp_path / "no" / "such" / "o.seg.nrrd"), "--model", str(model)],
        "bad suffix": [str(ct_path), "-o", str(tmp_path / "o.png"), "--model", str(model)],
        "bad model": [str(ct_path), "-o", str(tmp_path / "o.seg.nrrd"), "--model", str(tmp_path)],
        "bad device": [str(ct_path), "-o", str(tmp_path / "o.seg.nrrd"), "--model", str(model), "--device", "tpu"],
    }


@pytest.mark.parametrize("case", ["missing input", "unwritable output", "bad suffix", "bad model", "bad device"])
def test_cli_errors_are_one_line_exit_2(setup, tmp_path, case, capsys):
    root, model, ct_path, _ = setup
    assert main(["segment", *error_cases(root, model, ct_path, tmp_path)[case], "--quiet"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("surgicalai segment: error:"), lines
    assert not any(p.name.endswith((".seg.nrrd", ".csv")) for p in tmp_path.iterdir())


def test_console_command_exit_code_and_no_traceback(setup, tmp_path):
    """The real process: exit status 2 and a single line on stderr."""
    root, model, ct_path, _ = setup
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "surgicalai.cli",
            "segment",
            *error_cases(root, model, ct_path, tmp_path)["unwritable output"],
        ],
        check=False,
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "not exist" in lines[0] and "Traceback" not in result.stderr
