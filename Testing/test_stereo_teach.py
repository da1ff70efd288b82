"""Stereo as a teacher (``SurgicalDepthLib.stereo.teach`` and ``surgicalai stereo-teach``): fine-tuning on
confident stereo depth lowers the held-out error, the new model folder loads and predicts, cancel and bad
input leave nothing behind."""
import hashlib

import cv2
import numpy as np
import pytest
import torch

from SurgicalAICore.errors import OperationCancelled
from SurgicalAICore.progress import CancelToken
from SurgicalDepthLib.depth.loaders import load_depth_model
from SurgicalDepthLib.depth.metrics import depth_metrics
from SurgicalDepthLib.stereo.teach import TeachSettings, teach_from_stereo
from surgicalai.cli import main

FAST = TeachSettings(lr=3e-3, device="cpu")


def _write(folder, images):
    folder.mkdir()
    for i, image in enumerate(images):
        cv2.imwrite(str(folder / f"f{i:02d}.png"), image[:, :, ::-1])
    return folder


def _tiny_model(path, norm="batch"):
    from SurgicalDepthLib.depth.model import depth_card, save_depth_model
    from SurgicalDepthLib.depth.network import build_depth_network

    torch.manual_seed(0)
    net = build_depth_network({"channels": [4, 4, 8, 8, 8], "blocks": [0, 0, 0, 0, 0], "norm": norm})
    save_depth_model(path, net, depth_card("tiny-test", net, input_size=(64, 96)))
    return path


@pytest.fixture(scope="module")
def stereo_video(tmp_path_factory):
    """Six pairs of a camera sweeping along the wall of the synthetic chamber, as two frame folders and
    as one side-by-side folder, with the calibration file and a tiny randomly initialised depth model."""
    from SurgicalDepthLib.stereo.calibration_files import save_stereo_calibration
    from SurgicalDepthLib.stereo.synthetic import render_stereo_pair, stereo_camera
    from SurgicalDepthLib.synthetic.camera_paths import look_at
    from SurgicalDepthLib.synthetic.scenarios import shapes_scenario

    scenario, camera = shapes_scenario(seed=0, n_blobs=10), stereo_camera(160, 128)
    pairs = []
    for k in range(6):
        direction = np.array([1.0, 0.08 * k, 0.0]) / np.hypot(1.0, 0.08 * k)
        pose = look_at(-4 * direction, 46 * direction, 0.2 * k)
        pairs.append(render_stereo_pair(scenario, camera, pose, baseline_mm=5.0, seed=k))
    root = tmp_path_factory.mktemp("teach")
    _write(root / "L", [p.left for p in pairs])
    _write(root / "R", [p.right for p in pairs])
    _write(root / "SBS", [np.hstack([p.left, p.right]) for p in pairs])
    save_stereo_calibration(pairs[0].calibration, root / "pair.yml")
    return root, pairs, _tiny_model(root / "base")


def test_teaching_lowers_the_held_out_error_and_the_model_loads(stereo_video, tmp_path):
    root, pairs, base = stereo_video
    seen = []
    result = teach_from_stereo(root / "L", root / "pair.yml", tmp_path / "taught", model=base, right=root / "R",
                               settings=FAST, steps=60, held_out_fraction=0.34, progress=lambda f, m: seen.append(f))
    assert (result.train_frames, result.held_out_frames, result.steps) == (4, 2, 60)
    before, after = result.before, result.after
    # the random network is off in scale and shape; stereo teaches both
    assert after["metric_abs_rel"] < 0.5 * before["metric_abs_rel"], (before, after)
    assert after["median_abs_rel"] < before["median_abs_rel"], (before, after)
    assert seen[-1] == 1.0 and seen == sorted(seen)

    taught, source = load_depth_model(tmp_path / "taught", "cpu"), load_depth_model(base, "cpu")
    held = pairs[4:]
    for p in held:   # against the exact depth too, not only against the stereo that taught it
        truth = p.depth_mm > 0
        err_before = depth_metrics(source.predict(p.left), p.depth_mm, truth)["abs_rel"]
        err_after = depth_metrics(taught.predict(p.left), p.depth_mm, truth)["abs_rel"]
        assert err_after < 0.6 * err_before, (err_before, err_after)

    card = taught.card
    assert card["metrics"]["held_out_after"] == after and card["training"]["method"] == "stereo-teach"
    frames = card["training"]["frames"]
    assert frames["train"] == [0, 1, 2, 3] and frames["held_out"] == [4, 5] and frames["read"] == 6
    digest = hashlib.sha256()
    for p in pairs:
        digest.update(p.left.tobytes())
        digest.update(p.right.tobytes())
    assert card["training"]["source"]["pixels_sha256"] == digest.hexdigest()
    assert [s["name"] for s in card["training"]["source"]["inputs"]] == ["L", "R"]
    assert card["camera"]["width"] == 160 and card["input_size"] == [64, 96]


def test_frames_are_spread_over_the_video_and_minutes_bound_the_training(stereo_video, tmp_path):
    root, _, base = stereo_video
    result = teach_from_stereo(root / "SBS", root / "pair.yml", tmp_path / "taught", model=base, layout="sbs",
                               settings=FAST, frames=3, steps=100_000, minutes=0.002, held_out_fraction=0.34)
    frames = result.card["training"]["frames"]
    assert frames == {"read": 3, "train": [0, 2], "held_out": [4]}
    assert 1 <= result.steps < 100_000 and result.card["training"]["steps"] == result.steps
    assert load_depth_model(tmp_path / "taught", "cpu").predict(np.zeros((128, 160, 3), np.uint8)).shape == (128, 160)


def test_cancel_leaves_nothing(stereo_video, tmp_path):
    root, _, base = stereo_video
    token = CancelToken()

    def progress(fraction, message):
        if message.startswith("step"):
            token.cancel()

    with pytest.raises(OperationCancelled):
        teach_from_stereo(root / "SBS", root / "pair.yml", tmp_path / "taught", model=base, layout="sbs",
                          settings=FAST, steps=50, progress=progress, cancel=token)
    assert list(tmp_path.iterdir()) == []


def test_command_teaches_from_a_side_by_side_video(stereo_video, tmp_path, capsys):
    root, _, base = stereo_video
    rc = main(["stereo-teach", str(root / "SBS"), "--layout", "sbs", "--stereo-calibration", str(root / "pair.yml"),
               "--model", str(base), "-o", str(tmp_path / "taught"), "--steps", "20", "--lr", "3e-3",
               "--device", "cpu", "--held-out", "0.34"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "4 pairs taught, 2 held out, 20 steps" in captured.out and "held-out AbsRel" in captured.out
    card = load_depth_model(tmp_path / "taught", "cpu").card
    assert card["metrics"]["held_out_after"]["metric_abs_rel"] < card["metrics"]["held_out_before"]["metric_abs_rel"]
    assert card["training"]["source"]["layout"] == "sbs"


def _torchscript_file(root, tmp_path):
    from SurgicalDepthLib.depth.network import build_depth_network

    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(build_depth_network({"channels": [4, 4, 8, 8, 8], "blocks": [0] * 5})), str(path))
    return path


def _torchscript_folder(root, tmp_path):
    from SurgicalAICore.model_folder import write_model_folder
    from SurgicalDepthLib.depth.model import DEPTH_SCHEMA, depth_card
    from SurgicalDepthLib.depth.network import build_depth_network

    net = build_depth_network({"channels": [4, 4, 8, 8, 8], "blocks": [0] * 5})
    write_model_folder(tmp_path / "scripted", depth_card("ts", net, (64, 96)), torch.jit.script(net), DEPTH_SCHEMA)
    return tmp_path / "scripted"


@pytest.mark.parametrize("case, message", [
    ("black", "no confident depth in 3 pairs"), ("one pair", "only 1 of 1 pairs"), ("exists", "already exists"),
    ("torchscript file", "is a TorchScript file"), ("torchscript folder", "holds TorchScript weights"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(stereo_video, tmp_path, capsys, case, message):
    root, pairs, base = stereo_video
    video, model, out = root / "SBS", base, tmp_path / "taught"
    if case == "black":
        video = _write(tmp_path / "black", [np.zeros((128, 320, 3), np.uint8)] * 3)
    elif case == "one pair":
        video = _write(tmp_path / "one", [np.hstack([pairs[0].left, pairs[0].right])])
    elif case == "exists":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    elif case == "torchscript file":
        model = _torchscript_file(root, tmp_path)
    else:
        model = _torchscript_folder(root, tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    rc = main(["stereo-teach", str(video), "--layout", "sbs", "--stereo-calibration", str(root / "pair.yml"),
               "--model", str(model), "-o", str(out), "--steps", "5", "--device", "cpu"])
    err = capsys.readouterr().err
    # the progress bar (cleared on error) shares stderr: the error itself is one line of its own
    errors = [line for line in err.replace("\r", "\n").splitlines() if "error" in line]
    assert rc == 2 and len(errors) == 1 and errors[0].startswith("surgicalai stereo-teach: error: "), err
    assert message in errors[0] and err.endswith("\n") and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    if case == "exists":
        assert [p.name for p in out.iterdir()] == ["keep.txt"]
