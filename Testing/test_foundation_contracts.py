"""Shared contracts: progress/cancel, device choice, model folders, camera intrinsics, CLI errors."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from SurgicalAICore import model_folder as mf
from SurgicalAICore.device import select_device
from SurgicalAICore.errors import InputError, ModelError, OperationCancelled
from SurgicalAICore.progress import CancelToken, Progress
from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics, backproject, project

SCHEMA = mf.CardSchema(task="toy", required={"labels": list})


def test_progress_maps_sub_ranges_and_cancels():
    seen = []
    token = CancelToken()
    p = Progress(lambda f, m: seen.append(round(f, 3)), token)
    p.sub(0.5, 1.0).step(0.5, "half of second half")
    assert seen == [0.75]
    token.cancel()
    with pytest.raises(OperationCancelled):
        p.step(0.9)


def test_device_cpu_and_unknown():
    assert select_device("cpu").type == "cpu"
    assert select_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(InputError):
        select_device("tpu")


def toy_model(tmp_path):
    net = torch.nn.Linear(3, 2)
    card = {"name": "toy", "version": "1", "task": "toy", "labels": ["a", "b"]}
    return net, mf.write_model_folder(tmp_path / "m", card, net.state_dict(), SCHEMA)


def test_model_folder_round_trip_and_hash(tmp_path):
    import os

    net, folder = toy_model(tmp_path)
    umask = os.umask(0o022)
    os.umask(umask)
    # a model folder is shared data: not the owner-only mode of the temporary folder it was written in
    assert folder.path.stat().st_mode & 0o777 == 0o777 & ~umask
    loaded = mf.read_model_folder(folder.path, SCHEMA)
    state = mf.load_weights(loaded)
    assert torch.equal(state["weight"], net.weight.detach())
    # flip one byte: the hash check must refuse it before torch reads anything
    data = bytearray(loaded.weights_path.read_bytes())
    data[-1] ^= 0xFF
    loaded.weights_path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="SHA-256"):
        mf.read_model_folder(folder.path, SCHEMA)


def test_model_folder_schema_errors(tmp_path):
    _, folder = toy_model(tmp_path)
    card = json.loads((folder.path / "model.json").read_text())
    card["colour"] = "red"
    (folder.path / "model.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="unknown field"):
        mf.read_model_folder(folder.path, SCHEMA)
    with pytest.raises(ModelError, match="not found"):
        mf.read_model_folder(tmp_path / "nowhere", SCHEMA)
    with pytest.raises(InputError, match="already exists"):
        mf.write_model_folder(folder.path, {"name": "x", "version": "1", "task": "toy", "labels": []}, {}, SCHEMA)


def test_camera_backproject_project_and_resize():
    cam = CameraIntrinsics(300.0, 310.0, 159.5, 127.5, 320, 256)
    depth = np.full((256, 320), 50.0)
    pts = backproject(depth, cam)
    assert pts.shape == (256 * 320, 3)
    uv = project(pts, cam)
    u, v = np.meshgrid(np.arange(320), np.arange(256))
    np.testing.assert_allclose(uv, np.stack([u.ravel(), v.ravel()], 1), atol=1e-9)
    half = cam.scaled(160, 128)
    # the same ray hits the same physical point in the half-size frame
    np.testing.assert_allclose(project(pts[:1], half), (uv[:1] + 0.5) / 2 - 0.5, atol=1e-9)
    with pytest.raises(InputError, match="focal"):
        CameraIntrinsics(0.0, 1.0, 1.0, 1.0, 10, 10)
    with pytest.raises(InputError, match="outside"):
        CameraIntrinsics(10.0, 10.0, 50.0, 1.0, 10, 10)


def test_cli_bad_input_is_one_line_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "surgicalai.cli", "segment", str(tmp_path / "missing.nii.gz"),
                             "-o", str(tmp_path / "out.seg.nrrd")], check=False, capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_slicer_requirements_contain_the_package_pins():
    """The headless package's pins lie inside the ranges installed into Slicer (Resources/requirements.txt)."""
    import tomllib
    from pathlib import Path

    from packaging.requirements import Requirement

    from SurgicalAICore.dependencies import missing_requirements, slicer_requirements

    pins = {Requirement(p).name: Requirement(p) for p in tomllib.loads(
        (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]["dependencies"]}
    for line in slicer_requirements():
        wanted = Requirement(line)
        pinned = next(iter(pins[wanted.name].specifier)).version
        assert wanted.specifier.contains(pinned), f"pyproject pins {wanted.name}=={pinned}, outside {line}"
    assert missing_requirements() == []  # this environment has everything
    import importlib.metadata

    def installed(name):  # this environment, with OpenCV too old: installed but too old counts as missing
        return "4.5.0" if name == "opencv-python-headless" else importlib.metadata.version(name)

    assert missing_requirements(installed, lambda: False) == [
        "torch", "opencv-python-headless>=4.9"]
