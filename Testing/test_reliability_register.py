"""Issue 16, ``surgicalai register``: hostile inputs give one line and exit 2 (no segfault, no hang);
the tool's own ``.seg.nrrd`` is a valid target; non-rigid start matrices are refused; the outputs
appear together and never over an input."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from SurgicalAICore.errors import InputError
from SurgicalAICore.geometry import sitk_from_array
from SurgicalAICore.mrml.segmentations import export_seg_nrrd, new_segmentation_node
from SurgicalAICore.validation import check_rigid
from SurgicalDepthLib.depth.pointcloud import PointCloud, read_ply, write_ply
from SurgicalDepthLib.registration import shapes
from surgicalai.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    import SimpleITK as sitk

    root = tmp_path_factory.mktemp("reg")
    k, j, i = np.mgrid[0:40, 0:40, 0:40].astype(float)
    lab = np.zeros((40, 40, 40), np.uint8)
    lab[np.sqrt((i - 18) ** 2 + (j - 20) ** 2 + (k - 20) ** 2) <= 11] = 1
    lab[28:36, 6:16, 22:36] = 2
    m = np.diag([1.5, 1.5, 1.5, 1.0])
    sitk.WriteImage(sitk_from_array(lab, m), str(root / "labels.nii.gz"))
    node = new_segmentation_node(lab, m, [{"value": 1, "name": "ball", "color": [1, 0, 0]},
                                          {"value": 2, "name": "box", "color": [0, 1, 0]}], name="s")
    export_seg_nrrd(node, root / "seg.seg.nrrd")
    from SurgicalDepthLib.registration.files import load_target_file

    target = load_target_file(root / "labels.nii.gz", kind="segmentation")
    view = shapes.visible_patch(target.points, (1.0, 0.2, 0.3), 0.5)
    np.save(root / "cloud.npy", view)
    return root


def _one_line_exit_2(argv, capsys):
    code = main(argv)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and "error:" in err[0], (code, err)
    return err[0]


def _cli(*argv, timeout=120):
    env = {"PYTHONPATH": f"{ROOT}:{ROOT / 'SegmentationAI'}:{ROOT / 'SurgicalDepth'}", "OMP_NUM_THREADS": "1",
           "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "surgicalai.cli", *map(str, argv)], check=False,
                          capture_output=True, text=True, timeout=timeout, env=env)


PLY_CASES = {
    "x only": b"ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nend_header\n1\n2\n",
    "garbage": b"ply\nformat binary_little_endian 1.0\nelement vertex 100000\nproperty float x\n"
               b"property float y\nproperty float z\nend_header\n\x00\x01\x02",
    "truncated binary": b"ply\nformat binary_little_endian 1.0\nelement vertex 4\nproperty float x\n"
                        b"property float y\nproperty float z\nend_header\n" + np.zeros(7, "<f4").tobytes(),
    "short ascii": b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
                   b"property float z\nend_header\n1 2 3\n4 5\n",
    "huge count ascii": b"ply\nformat ascii 1.0\nelement vertex 999999999999\nproperty float x\nproperty float y\n"
                        b"property float z\nend_header\n1 2 3\n",
    "no header end": b"ply\nformat ascii 1.0\nelement vertex 3\n",
    "not ply": b"\x89PNG\r\n\x1a\n" + bytes(range(256)),
}


@pytest.mark.parametrize("case", sorted(PLY_CASES))
def test_bad_ply_is_one_input_error(tmp_path, case):
    path = tmp_path / "c.ply"
    path.write_bytes(PLY_CASES[case])
    with pytest.raises(InputError):
        read_ply(path)


def test_ply_round_trip_binary_and_ascii(tmp_path):
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(50, 3)).astype(np.float32)
    cols = rng.integers(0, 255, (50, 3)).astype(np.uint8)
    for binary in (True, False):
        write_ply(PointCloud(pts, cols, pts[:, 2].copy()), tmp_path / "c.ply", binary=binary)
        back = read_ply(tmp_path / "c.ply")
        assert np.allclose(back.points, pts, atol=1e-5) and np.array_equal(back.colors, cols)


def test_bad_ply_in_the_real_process_is_exit_2_not_a_segfault(files, tmp_path):
    (tmp_path / "xonly.ply").write_bytes(PLY_CASES["x only"])
    done = _cli("register", tmp_path / "xonly.ply", "--segmentation", files / "labels.nii.gz", "-o", tmp_path / "o")
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "y/z" in done.stderr
    assert not (tmp_path / "o").exists()


def test_nan_budget_is_refused_not_a_hang(files, tmp_path, capsys):
    line = _one_line_exit_2(["register", str(files / "cloud.npy"), "--segmentation", str(files / "labels.nii.gz"),
                             "--init", "global", "--budget", "nan", "-o", str(tmp_path / "o")], capsys)
    assert "--budget" in line and not (tmp_path / "o").exists()


def test_huge_cloud_is_subsampled_to_the_budget_and_said(files, tmp_path, capsys, monkeypatch):
    import surgicalai.commands.register as reg

    monkeypatch.setattr(reg, "MAX_CLOUD_POINTS", 1000)
    cloud = np.load(files / "cloud.npy")
    np.save(tmp_path / "big.npy", np.repeat(cloud, 1 + 3000 // len(cloud), axis=0))
    main(["register", str(tmp_path / "big.npy"), "--segmentation", str(files / "labels.nii.gz"), "-o",
          str(tmp_path / "o")])
    out = capsys.readouterr().out
    assert "registering a random 1000" in out
    assert '"points": 1000' in (tmp_path / "o" / "registration.json").read_text()


def test_the_tools_own_seg_nrrd_is_a_valid_target(files, tmp_path, capsys):
    code = main(["register", str(files / "cloud.npy"), "--segmentation", str(files / "seg.seg.nrrd"),
                 "-o", str(tmp_path / "o")])
    assert code in (0, 1), capsys.readouterr().err
    assert (tmp_path / "o" / "camera_to_ct.txt").is_file() and (tmp_path / "o" / "registration.json").is_file()


NON_RIGID = {
    "projective": np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0.1, 0, 0, 1]], float),
    "reflection": np.diag([-1.0, 1, 1, 1]),
    "singular": np.diag([1.0, 1, 0, 1]),
    "shear": np.array([[1, 0.5, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float),
    "nan": np.full((4, 4), np.nan),
}


@pytest.mark.parametrize("case", sorted(NON_RIGID))
def test_non_rigid_start_matrix_is_refused(files, tmp_path, case, capsys):
    np.savetxt(tmp_path / "start.txt", NON_RIGID[case])
    line = _one_line_exit_2(["register", str(files / "cloud.npy"), "--segmentation", str(files / "labels.nii.gz"),
                             "--start", str(tmp_path / "start.txt"), "-o", str(tmp_path / "o")], capsys)
    assert "start pose" in line and not (tmp_path / "o").exists()


def test_check_rigid_accepts_rotations_and_uniform_scale_when_asked():
    rot = shapes.perturbation(20, 30, np.zeros(3), np.random.default_rng(3))
    assert np.array_equal(check_rigid(rot), rot)
    scaled = rot.copy()
    scaled[:3, :3] *= 1.7
    with pytest.raises(InputError):
        check_rigid(scaled)
    assert np.array_equal(check_rigid(scaled, scale=True), scaled)


def test_output_over_an_input_is_refused(files, tmp_path, capsys):
    import shutil

    shutil.copy(files / "cloud.npy", tmp_path / "camera_to_ct.txt")  # an input named like an output
    before = (tmp_path / "camera_to_ct.txt").read_bytes()
    line = _one_line_exit_2(["register", str(tmp_path / "camera_to_ct.txt"), "--segmentation",
                             str(files / "labels.nii.gz"), "-o", str(tmp_path)], capsys)
    assert "input" in line and (tmp_path / "camera_to_ct.txt").read_bytes() == before


def test_no_parent_folders_are_created_for_a_refused_output(files, tmp_path, capsys):
    _one_line_exit_2(["register", str(files / "cloud.npy"), "--segmentation", str(files / "labels.nii.gz"),
                      "-o", str(tmp_path / "no" / "such" / "o")], capsys)
    assert not (tmp_path / "no").exists()
