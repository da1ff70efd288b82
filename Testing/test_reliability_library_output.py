"""Issue 16: a bad file gets the project's one line, not VTK's, GDCM's, FFmpeg's or libpng's screenful first.

Library-level checks use ``capfd`` (file descriptor 2, where native code writes); the command-line checks
run the real console command and require stderr to be exactly the one error line."""
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from SurgicalAICore.errors import InputError
from SurgicalAICore.image_io import dicom_series_ids
from SurgicalAICore.library_output import native_stderr, vtk_messages
from SurgicalDepthLib.registration.meshes import read_mesh
from SurgicalDepthLib.video.sources import ImageFolderSource

ROOT = Path(__file__).resolve().parents[1]
GARBAGE = bytes(np.random.default_rng(16).integers(0, 256, 3000, dtype=np.uint8))
BAD_MESHES = {
    "garbage.stl": GARBAGE,
    "garbage.vtk": GARBAGE,
    "cut.stl": b"solid x\nfacet normal 0 0 1\n outer loop\nvertex 1 2\n",
    "short.vtk": b"# vtk DataFile Version 3.0\nx\nASCII\nDATASET POLYDATA\nPOINTS 5 float\n1 2 3\n",
}


def _cli(*argv):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("", "SegmentationAI", "SurgicalDepth"))}
    env.pop("OPENCV_FFMPEG_LOGLEVEL", None)
    return subprocess.run([sys.executable, "-m", "surgicalai.cli", *map(str, argv)], check=False,
                          capture_output=True, text=True, timeout=180, env=env)


@pytest.mark.parametrize("name", sorted(BAD_MESHES))
def test_bad_mesh_is_one_line_with_vtks_reason(name, tmp_path, capfd):
    path = tmp_path / name
    path.write_bytes(BAD_MESHES[name])
    with pytest.raises(InputError, match=r"no points \(VTK: ") as info:
        read_mesh(path)
    assert "\n" not in str(info.value) and str(info.value).isascii()
    assert capfd.readouterr().err == ""


def test_vtk_output_is_restored_after_the_read(tmp_path, capfd):
    import vtk

    before = vtk.vtkOutputWindow.GetInstance()
    with vtk_messages() as printed:
        reader = vtk.vtkPolyDataReader()
        reader.SetFileName(str(tmp_path / "missing.vtk"))
        reader.Update()
    assert printed.first().startswith("VTK: ") and capfd.readouterr().err == ""
    assert vtk.vtkOutputWindow.GetInstance() is before or \
        vtk.vtkOutputWindow.GetInstance().GetClassName() == before.GetClassName()
    again = vtk.vtkPolyDataReader()  # outside the block VTK speaks again
    again.SetFileName(str(tmp_path / "missing.vtk"))
    again.Update()
    assert "vtkPolyDataReader" in capfd.readouterr().err


def test_folder_without_a_series_is_scanned_quietly(tmp_path, capfd):
    for n in range(3):
        (tmp_path / f"{n}.dcm").write_bytes(b"\0" * 128 + b"DICM" + GARBAGE[: 500 + n])
    assert dicom_series_ids(tmp_path) == []
    assert capfd.readouterr().err == ""  # ITK printed 'No Series were found' twice here


def _corrupt_png(path):
    _, png = cv2.imencode(".png", np.full((40, 40, 3), 90, np.uint8))
    data = bytearray(png.tobytes())
    data[60:90] = b"x" * 30  # inside the image data: libpng's CRC check fails
    path.write_bytes(bytes(data))


def test_corrupt_png_frame_is_one_error_carrying_libpngs_reason(tmp_path, capfd):
    _corrupt_png(tmp_path / "a.png")
    with pytest.raises(InputError, match=r"Cannot read frame a\.png: corrupt or not an image \(libpng error"):
        next(iter(ImageFolderSource(tmp_path)))
    assert capfd.readouterr().err == ""


def test_what_a_good_read_prints_is_shown_after_all(capfd):
    with native_stderr() as printed:
        os.write(2, b"a library warning\n")
    assert capfd.readouterr().err == ""
    printed.replay()
    assert capfd.readouterr().err == "a library warning\n"
    with pytest.raises(KeyError), native_stderr():
        os.write(2, b"said before the failure\n")
        raise KeyError("x")
    assert capfd.readouterr().err == "said before the failure\n"


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    np.save(root / "cloud.npy", np.random.default_rng(0).normal(size=(500, 3)) * 10)
    (root / "garbage.stl").write_bytes(BAD_MESHES["garbage.stl"])
    writer = cv2.VideoWriter(str(root / "ok.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for i in range(10):
        writer.write(np.random.default_rng(i).integers(0, 255, (48, 64, 3), dtype=np.uint8))
    writer.release()
    data = (root / "ok.mp4").read_bytes()
    (root / "cut.mp4").write_bytes(data[: len(data) * 2 // 3])  # the index (moov atom) is at the end
    (root / "dcm").mkdir()
    for n in range(3):
        (root / "dcm" / f"{n}.dcm").write_bytes(b"\0" * 128 + b"DICM" + GARBAGE[: 500 + n])
    return root


@pytest.mark.parametrize("case", ["register-stl", "depth-cut-mp4", "segment-dicom-folder"])
def test_command_line_prints_exactly_one_line(case, bad_files, tmp_path):
    argv = {"register-stl": ["register", bad_files / "cloud.npy", "--mesh", bad_files / "garbage.stl",
                             "-o", tmp_path / "t.txt"],
            "depth-cut-mp4": ["depth", bad_files / "cut.mp4", "-o", tmp_path / "d"],
            "segment-dicom-folder": ["segment", bad_files / "dcm", "-o", tmp_path / "s.seg.nrrd"]}[case]
    run = _cli(*argv)
    assert run.returncode == 2, run.stderr
    assert len(run.stderr.splitlines()) == 1 and run.stderr.startswith("surgicalai "), run.stderr
    assert list(tmp_path.iterdir()) == []
