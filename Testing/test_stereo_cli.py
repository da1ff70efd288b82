"""``surgicalai depth --stereo-calibration`` and ``surgicalai calibrate-stereo``: outputs, and bad input
refused with one line, exit code 2 and nothing written."""
import json

import cv2
import numpy as np
import pytest

from SurgicalDepthLib.stereo import load_stereo_calibration, save_stereo_calibration
from surgicalai.cli import main


@pytest.fixture(scope="module")
def stereo_folders(tmp_path_factory):
    from test_stereo_matching import synthetic_pair

    p = synthetic_pair()
    root = tmp_path_factory.mktemp("stereo")
    for side, image in (("L", p.left), ("R", p.right), ("SBS", np.hstack([p.left, p.right]))):
        (root / side).mkdir()
        for i in range(2):
            cv2.imwrite(str(root / side / f"f{i}.png"), image[:, :, ::-1])
    (root / "R1").mkdir()
    cv2.imwrite(str(root / "R1" / "f0.png"), p.right[:, :, ::-1])
    save_stereo_calibration(p.calibration, root / "pair.yml")
    return root, p


def test_depth_from_sbs_folder(stereo_folders, tmp_path, capsys):
    root, p = stereo_folders
    rc = main(["depth", str(root / "SBS"), "--layout", "sbs", "--stereo-calibration", str(root / "pair.yml"),
               "-o", str(tmp_path / "out"), "--points", "3000"])
    assert rc == 0, capsys.readouterr().err
    depth = np.load(tmp_path / "out" / "f1.npy")
    conf = np.load(tmp_path / "out" / "f1_confidence.npy")
    c = (conf > 0.5) & (p.depth_mm > 0)
    assert np.mean(np.abs(depth[c] - p.depth_mm[c]) / p.depth_mm[c]) < 0.02
    assert (tmp_path / "out" / "f0.ply").exists() and "2 frames" in capsys.readouterr().out


def _bad_calibration(root, tmp_path, change):
    d = load_stereo_calibration(root / "pair.yml").to_dict()
    change(d)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d))
    return path


@pytest.mark.parametrize("case, message", [
    ("nan", "NaN"), ("rotation", "not a rotation"), ("baseline", "baseline"), ("size", "views but the frames are"),
    ("swapped", "swapped"), ("counts", "2 frames but the right one 1"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(stereo_folders, tmp_path, capsys, case, message):
    root, _ = stereo_folders
    calib, left, right = root / "pair.yml", root / "L", root / "R"
    if case == "nan":
        calib = _bad_calibration(root, tmp_path, lambda d: d["T"].__setitem__(0, float("nan")))
    elif case == "rotation":
        calib = _bad_calibration(root, tmp_path, lambda d: d.__setitem__("R", [[1, 0, 0], [0, 1, 0], [0, 0, 2]]))
    elif case == "baseline":
        calib = _bad_calibration(root, tmp_path, lambda d: d.__setitem__("T", [0, 0, 0]))
    elif case == "size":
        calib = _bad_calibration(root, tmp_path, lambda d: [d[s].update(width=640, height=512, cx=319.5, cy=255.5)
                                                            for s in ("left", "right")])
    elif case == "swapped":
        left, right = right, left
    elif case == "counts":
        right = root / "R1"
    rc = main(["depth", str(left), "--right", str(right), "--stereo-calibration", str(calib),
               "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_calibrate_stereo_command(tmp_path, capsys):
    from test_stereo_calibration import T_TRUE, board_pairs

    names = []
    for i, (left, right) in enumerate(board_pairs(n=6)):
        for side, image in (("l", left), ("r", right)):
            cv2.imwrite(str(tmp_path / f"{side}{i}.png"), image)
            names.append(str(tmp_path / f"{side}{i}.png"))
    rc = main(["calibrate-stereo", *names, "--pattern", "8", "5", "--square", "6", "-o", str(tmp_path / "rig.yml")])
    assert rc == 0, capsys.readouterr().err
    rig = load_stereo_calibration(tmp_path / "rig.yml")
    assert abs(rig.baseline_mm / np.linalg.norm(T_TRUE) - 1) < 0.03
    assert "reprojection error" in capsys.readouterr().out
    rc = main(["calibrate-stereo", *names[:3], "--pattern", "8", "5", "--square", "6", "-o", str(tmp_path / "x.yml")])
    assert rc == 2 and "odd number" in capsys.readouterr().err and not (tmp_path / "x.yml").exists()
