"""Issue 16: bad inputs accepted silently, inputs destroyed, half-written results, tracebacks.

Each test is one case of the issue that failed before its fix."""
from __future__ import annotations

import gzip
import shutil

import cv2
import numpy as np
import pytest
import SimpleITK as sitk

from SegmentationAILib.synthetic import save_tiny_model, synthetic_ct
from SurgicalAICore.errors import InputError, ModelError
from SurgicalAICore.image_io import read_image
from surgicalai.cli import main


@pytest.fixture(scope="module")
def seg_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("segrel")
    model = save_tiny_model(root / "tiny").path
    ct, _ = synthetic_ct((24, 20, 12), spacing=(2.0, 2.0, 4.0))
    sitk.WriteImage(ct, str(root / "ct.nii.gz"))
    return root, model


def one_error_line(capsys, code, expected=2):
    # a progress bar is not an error line (on a terminal it is closed first; in a log the error follows it)
    lines = [line[line.find("surgicalai "):] if "surgicalai " in line else line
             for line in capsys.readouterr().err.splitlines()]
    err = [line for line in lines if line.strip() and "%|" not in line]
    assert code == expected and len(err) == 1, (code, err)
    return err[0]


# ------------------------------------------------------------------ NIfTI payload (item 7)
def _float_volume(tmp_path, values):
    path = tmp_path / "v.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(values.astype(np.float32)), str(path))
    return path


def test_nan_and_inf_voxels_are_not_read_as_zero(tmp_path):
    values = np.random.default_rng(0).normal(size=(6, 7, 8))
    values[1, 2, 3], values[4, 5, 6] = np.nan, np.inf
    with pytest.raises(InputError, match="2 NaN or infinite"):
        read_image(_float_volume(tmp_path, values))


def test_all_nan_volume_is_refused(tmp_path):
    with pytest.raises(InputError, match="336 NaN"):
        read_image(_float_volume(tmp_path, np.full((6, 7, 8), np.nan)))


def test_gzip_nifti_cut_in_half_is_refused_not_zero_filled(tmp_path):
    path = tmp_path / "v.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.random.default_rng(1).integers(0, 999, (30, 30, 30)).astype(np.int16)),
                    str(path))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match="cut short"):
        read_image(path)


def test_uncompressed_nifti_cut_short_is_refused(tmp_path):
    path = _float_volume(tmp_path, np.ones((6, 7, 8)))
    raw = gzip.decompress(path.read_bytes())
    short = tmp_path / "short.nii"
    short.write_bytes(raw[: len(raw) - 100])
    with pytest.raises(InputError, match="truncated"):
        read_image(short)


def test_intact_nifti_still_reads(tmp_path):
    values = np.random.default_rng(2).normal(size=(6, 7, 8))
    assert np.allclose(sitk.GetArrayFromImage(read_image(_float_volume(tmp_path, values))), values, atol=1e-6)


# ------------------------------------------------------------------ segment (items 4, 5, 6)
def test_segment_refuses_to_overwrite_its_input(seg_setup, tmp_path, capsys):
    root, model = seg_setup
    ct = tmp_path / "in.nii.gz"
    shutil.copy(root / "ct.nii.gz", ct)
    before = ct.read_bytes()
    line = one_error_line(capsys, main(["segment", str(ct), "-o", str(ct), "--model", str(model), "--quiet"]))
    assert "input" in line and ct.read_bytes() == before


def test_segment_huge_spacing_is_one_line_not_an_allocation_traceback(seg_setup, tmp_path, capsys):
    root, model = seg_setup
    image = read_image(root / "ct.nii.gz")
    image.SetSpacing((1e6, 1e6, 1e6))
    sitk.WriteImage(image, str(tmp_path / "huge.nii.gz"))
    line = one_error_line(capsys, main(["segment", str(tmp_path / "huge.nii.gz"), "-o", str(tmp_path / "o.seg.nrrd"),
                                        "--model", str(model), "--device", "cpu", "--quiet"]))
    assert "GiB" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["huge.nii.gz"]


def test_failing_statistics_write_leaves_no_segmentation_and_names_no_temp_file(seg_setup, tmp_path, capsys,
                                                                               monkeypatch):
    from SegmentationAILib import statistics

    root, model = seg_setup

    def broken(rows, path):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(statistics, "write_statistics_csv", broken)
    out = tmp_path / "r.seg.nrrd"
    line = one_error_line(capsys, main(["segment", str(root / "ct.nii.gz"), "-o", str(out), "--model", str(model),
                                        "--device", "cpu", "--no-tta", "--quiet"]))
    assert "r_statistics.csv" in line and ".tmp" not in line
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ evaluate (items 5, 6)
def test_evaluate_refuses_an_output_over_a_reference_label(tmp_path, capsys):
    from test_train_cli import write_cases

    write_cases(tmp_path / "cases", [0])
    label = tmp_path / "cases" / "pt0_seg.nii.gz"
    before = label.read_bytes()
    code = main(["evaluate", str(tmp_path / "nomodel"), str(tmp_path / "cases"), "--image", "*_ct.nii.gz",
                 "--label", "*_seg.nii.gz", "-o", str(label)])
    line = one_error_line(capsys, code)
    assert "input" in line and label.read_bytes() == before


def test_evaluate_json_into_a_folder_is_refused_before_the_csv(tmp_path, capsys):
    from test_train_cli import write_cases

    write_cases(tmp_path / "cases", [0])
    (tmp_path / "folder").mkdir()
    code = main(["evaluate", str(tmp_path / "nomodel"), str(tmp_path / "cases"), "--image", "*_ct.nii.gz",
                 "--label", "*_seg.nii.gz", "-o", str(tmp_path / "e.csv"), "--json", str(tmp_path / "folder")])
    assert "folder" in one_error_line(capsys, code)
    assert not (tmp_path / "e.csv").exists()


# ------------------------------------------------------------------ depth / render (items 4, 5, 7)
def test_frames_with_the_same_stem_get_distinct_output_names(tmp_path):
    from SurgicalDepthLib.video.sources import ImageFolderSource

    frame = np.full((32, 32, 3), 90, np.uint8)
    for name in ("a.png", "a.jpg", "b.png"):
        cv2.imwrite(str(tmp_path / name), frame)
    names = [f.name for f in ImageFolderSource(tmp_path)]
    assert len(names) == 3 and len(set(names)) == 3 and "b" in names


@pytest.mark.parametrize("fps", [float("nan"), float("inf"), 0.0, -5.0])
def test_bad_frame_rate_is_refused(tmp_path, fps):
    from SurgicalDepthLib.video.sources import ImageFolderSource

    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(InputError, match="frame rate"):
        ImageFolderSource(tmp_path, fps=fps)


def test_depth_output_parent_folders_are_not_created(tmp_path):
    from SurgicalDepthLib.depth.pipeline import _prepare_out_dir

    with pytest.raises(InputError, match="does not exist"):
        _prepare_out_dir(tmp_path / "no" / "such" / "out")
    assert list(tmp_path.iterdir()) == []


def test_torchscript_file_of_another_model_is_a_model_error(tmp_path):
    import torch

    from SurgicalDepthLib.depth.loaders import load_depth_model

    torch.jit.script(torch.nn.Linear(5, 2)).save(str(tmp_path / "linear.pt"))
    with pytest.raises(ModelError, match="not a depth model"):
        load_depth_model(tmp_path / "linear.pt", "cpu")


def test_render_refuses_a_huge_frame_size(tmp_path, capsys):
    code = main(["render", "shapes", "-o", str(tmp_path / "ds"), "--size", "100000x100000", "--frames", "1"])
    assert "too large" in one_error_line(capsys, code)
    assert list(tmp_path.iterdir()) == []


def test_render_ct_scenario_from_garbage_is_one_line(tmp_path, capsys):
    (tmp_path / "garbage.nii.gz").write_bytes(b"not a volume at all" * 10)
    code = main(["render", f"ct:{tmp_path / 'garbage.nii.gz'}", "-o", str(tmp_path / "ds"), "--frames", "1",
                 "--paths", "1"])
    assert "garbage.nii.gz" in one_error_line(capsys, code)
    assert not (tmp_path / "ds").exists()


# ------------------------------------------------------------------ the dispatcher guard (build item 2)
def test_unexpected_exception_is_one_line_exit_1_and_debug_shows_it(tmp_path, capsys, monkeypatch):
    from surgicalai.commands import render

    def boom(args):
        raise ZeroDivisionError("division by zero\nsecond line")

    monkeypatch.setattr(render, "run", boom)
    line = one_error_line(capsys, main(["render", "shapes", "-o", str(tmp_path / "ds")]), expected=1)
    assert "unexpected error (ZeroDivisionError" in line and "shapes" in line and "report" in line
    with pytest.raises(ZeroDivisionError):
        main(["--debug", "render", "shapes", "-o", str(tmp_path / "ds")])


# ------------------------------------------------------------------ demo (item 6)
def _fake_steps(monkeypatch, tmp_path, fail: bool):
    import sys
    import types

    from surgicalai.demo import pipeline

    module = types.ModuleType("fake_demo_step")

    def run_demo_step(ctx):
        (ctx.out_dir / "step.txt").write_text("new")
        ctx.file("step output", ctx.out_dir / "step.txt")
        if fail:
            raise KeyboardInterrupt

    module.run_demo_step = run_demo_step
    monkeypatch.setitem(sys.modules, "fake_demo_step", module)
    monkeypatch.setattr(pipeline, "STEPS", [("Fake step", "fake_demo_step")])
    return pipeline


def test_interrupted_demo_keeps_the_earlier_output_and_leaves_no_partial_folder(tmp_path, monkeypatch, capsys):
    pipeline = _fake_steps(monkeypatch, tmp_path, fail=False)
    ctx = pipeline.run_demo(tmp_path / "demo")
    assert (tmp_path / "demo" / "step.txt").read_text() == "new" and (tmp_path / "demo" / "report.html").is_file()
    assert ctx.files[0][1] == tmp_path / "demo" / "step.txt"
    assert ".tmp" not in capsys.readouterr().out  # messages name the final folder, never the working one
    (tmp_path / "demo" / "step.txt").write_text("earlier")
    pipeline = _fake_steps(monkeypatch, tmp_path, fail=True)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_demo(tmp_path / "demo")
    assert (tmp_path / "demo" / "step.txt").read_text() == "earlier"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_demo(tmp_path / "fresh")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]


def test_camera_whose_distortion_empties_every_cloud_is_refused():
    from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics

    with pytest.raises(InputError, match="outside the frame"):
        CameraIntrinsics(300.0, 300.0, 159.5, 127.5, 320, 256, (1e9, 0, 0, 0, 0))
    for ordinary in ((-0.3, 0.1, 0, 0, 0), (0.2, 0, 0.001, 0, 0), (-1.5, 0.8, 0, 0, 0)):
        CameraIntrinsics(300.0, 300.0, 159.5, 127.5, 320, 256, ordinary)


def test_progress_bars_are_closed_before_an_error_on_a_terminal(monkeypatch):
    import io
    import sys

    from tqdm import tqdm

    from surgicalai.cli import _close_progress_bars

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    bar = tqdm(total=10, file=terminal, leave=False)
    bar.update(3)
    _close_progress_bars()
    assert bar.disable and not tqdm._instances  # closed: the next line starts clean
