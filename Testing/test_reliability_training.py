"""Issue 16, training options: NaN/negative/zero settings, huge ``--class`` ranges and a second run
on the same output are one-line refusals before anything is written or allocated."""
from __future__ import annotations

import fcntl
import os

import numpy as np
import pytest

from SurgicalAICore.errors import InputError
from SurgicalAICore.locks import lock_path, run_lock
from test_train_cli import write_cases


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    root = tmp_path_factory.mktemp("trainrel")
    write_cases(root / "train", [0, 1])
    return root / "train"


BAD_TRAIN = {
    "lr nan": (["--lr", "nan"], "--lr"),
    "lr negative": (["--lr", "-1"], "--lr"),
    "batch 0": (["--batch-size", "0"], "--batch-size"),
    "patches 0": (["--patches-per-case", "0"], "--patches-per-case"),
    "steps 0": (["--steps-per-epoch", "0"], "--steps-per-epoch"),
    "epochs 0": (["--epochs", "0"], "--epochs"),
    "spacing inf": (["--spacing", "inf", "1", "1"], "--spacing"),
    "huge class value": (["--class", "a=1-99999999999"], "label values go up to"),
}


@pytest.mark.parametrize("case", sorted(BAD_TRAIN))
def test_bad_train_option_is_one_line_and_writes_nothing(cases, tmp_path, case, capsys):
    from surgicalai.cli import main

    extra, needle = BAD_TRAIN[case]
    argv = ["train", str(cases), "--image", "*_ct.nii.gz", "--label", "*_seg.nii.gz", *extra, "--device", "cpu",
            "--quiet", "-o", str(tmp_path / "m")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
    assert list(tmp_path.iterdir()) == []


def test_wide_class_range_is_matched_not_expanded(cases):
    """``a=1-1000000000`` once grew to 22 GB; now it costs nothing and still finds the values present."""
    import resource

    from SegmentationAILib.cases import collect_cases
    from SegmentationAILib.label_mapping import LabelMapping, check_mapping

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    mapping = LabelMapping.parse(["shapes=1-1000000000"])
    found = collect_cases([str(cases)], ["*_ct.nii.gz"], ["*_seg.nii.gz"])
    report = check_mapping(mapping, found)
    assert all(names == ["shapes"] for names in report.present.values())
    classes = mapping.apply(found[0])
    labels = found[0].label_array(next(iter(found[0].labels)))
    assert np.array_equal(classes > 0, labels > 0)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB


def test_settings_validate_is_what_the_loop_calls(tmp_path):
    from test_train_synthetic import make_case, tiny_settings

    from SegmentationAILib.label_mapping import LabelMapping
    from SegmentationAILib.training.loop import train

    with pytest.raises(InputError, match="learning rate"):
        train([make_case(0)], LabelMapping.parse(["ball=1"]), tmp_path / "m", tiny_settings(learning_rate=float("nan")))
    assert list(tmp_path.iterdir()) == []


BAD_DEPTH = {"lr nan": dict(lr=float("nan")), "lr negative": dict(lr=-1.0), "batch 0": dict(batch_size=0),
             "steps 0": dict(steps=0), "minutes negative": dict(max_minutes=-1.0)}


@pytest.mark.parametrize("case", sorted(BAD_DEPTH))
def test_bad_depth_training_config_is_refused_before_any_folder(tmp_path, case):
    from SurgicalDepthLib.depth.training import TrainConfig, train_depth_model

    with pytest.raises(InputError):
        train_depth_model([str(tmp_path)], str(tmp_path / "m"), TrainConfig(**BAD_DEPTH[case]))
    assert list(tmp_path.iterdir()) == []


def test_second_run_on_the_same_output_fails_clearly_while_the_first_holds_it(tmp_path):
    out = tmp_path / "model"
    with run_lock(out):
        holder = lock_path(out).read_text()
        assert holder == str(os.getpid())
        # another process asking for the same output: a separate open file description, so flock conflicts
        fd = os.open(lock_path(out), os.O_RDWR)
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(fd)
        with pytest.raises(InputError, match=f"process {os.getpid()}"):
            with run_lock(out):
                pass
    assert not lock_path(out).exists()
    with run_lock(out):  # free again once released
        pass


def test_resume_with_other_settings_says_what_is_ignored():
    from test_train_synthetic import tiny_settings

    stored = tiny_settings(epochs=10)
    assert tiny_settings(epochs=12).resume_notice(stored) is None  # epochs may grow
    notice = tiny_settings(epochs=5, learning_rate=0.5).resume_notice(stored)
    assert "epochs 5 (the run keeps 10)" in notice and "learning_rate 0.5" in notice
