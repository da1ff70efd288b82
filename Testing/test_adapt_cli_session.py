"""``surgicalai adapt-depth`` refusals (one line, exit code 2, nothing written) and the panel's session action."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
from adapt_helpers import synthetic_clip
from small_depth_model import small_bundled_model

from SurgicalAICore.errors import InputError
from SurgicalDepthLib.depth.adapt import AdaptConfig, adapt_for_session
from SurgicalDepthLib.depth.adapt_motion import MotionConfig
from SurgicalDepthLib.video.sources import ArraySource
from SurgicalDepthLib.depth_session import DepthSession
from surgicalai.cli import main


def write_folder(folder: Path, frames) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for k, f in enumerate(frames):
        cv2.imwrite(str(folder / f"{k:04d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    return folder


@pytest.mark.parametrize("case", ["static", "few", "no_camera", "sizes"])
def test_cli_refuses_bad_clips_with_one_line(tmp_path, capsys, case):
    frames, _, _, camera = synthetic_clip()
    clip = {"static": [frames[0]] * 12, "few": frames[:4], "no_camera": frames,
            "sizes": [*frames[:5], cv2.resize(frames[5], (120, 96)), *frames[6:]]}[case]
    folder = write_folder(tmp_path / "clip", clip)
    camera.save_json(tmp_path / "camera.json")
    args = ["adapt-depth", str(folder), "-o", str(tmp_path / "out"), "--minutes", "1"]
    if case != "no_camera":
        args += ["--camera", str(tmp_path / "camera.json")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    # the progress bar shares stderr; the refusal itself is one line
    assert len([line for line in err.splitlines() if "error" in line]) == 1
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.checkpoints").exists()


def test_cli_reads_a_plain_3x3_matrix_camera(tmp_path):
    from surgicalai.commands.adapt_depth import read_camera_file

    (tmp_path / "K.txt").write_text("333.1 0 459.7\n0 333.1 271.0\n0 0 1\n")
    cam = read_camera_file(str(tmp_path / "K.txt"), (960, 540))
    assert (cam.fx, cam.cy, cam.width, cam.height) == (333.1, 271.0, 960, 540)


def test_session_action_adapts_and_switches_the_model(tmp_path, scene):
    frames, _, _, camera = synthetic_clip()
    model = small_bundled_model(tmp_path / "small")
    session = DepthSession(scene)
    session.set_model(str(model), "cpu")
    nodes = scene.GetNumberOfNodes()
    with pytest.raises(InputError, match="No camera intrinsics"):
        adapt_for_session(session, ArraySource(frames), tmp_path / "adapted")
    assert scene.GetNumberOfNodes() == nodes and session.model_key[0] == str(model)
    session.set_camera(camera)
    cfg = AdaptConfig(max_steps=2, batch_size=2, threads=1, holdout_fraction=0.3, motion=MotionConfig(max_gap=2),
                      motion_source="pairs")
    result = adapt_for_session(session, ArraySource(frames), tmp_path / "adapted", config=cfg)
    assert session.model_key[0] == str(result.path) and result.card["training"]["steps"] == 2
    assert result.card["training"]["source_model"] == json.loads((model / "model.json").read_text())["name"]
