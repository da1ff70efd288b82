"""Synthetic dataset folder: writer/reader round trip, checks, atomic writing, the render CLI."""
import json
import os

import cv2
import numpy as np
import pytest

from SurgicalAICore.errors import InputError
from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics
from SurgicalDepthLib.synthetic.renderer import RenderedFrame
from SurgicalDepthLib.synthetic.dataset import (DatasetWriter, SyntheticDepthDataset, decode_depth, encode_depth,
                                                render_dataset)
from SurgicalDepthLib.synthetic.scenarios import shapes_scenario
from surgicalai.cli import main

CAM = CameraIntrinsics(60.0, 55.0, 39.5, 31.5, 80, 64)


def fake_frame(i, cam=CAM):
    rng = np.random.default_rng(i)
    depth = rng.uniform(5.0, 200.0, (cam.height, cam.width)).astype(np.float32)
    depth[:3] = 0.0
    pose = np.eye(4)
    pose[:3, 3] = rng.normal(size=3) * 10
    return RenderedFrame(rng.integers(0, 255, (cam.height, cam.width, 3), dtype=np.uint8), depth, depth > 0, pose, cam)


def write(tmp_path, n=6, name="ds"):
    frames = [fake_frame(i) for i in range(n)]
    with DatasetWriter(tmp_path / name, CAM) as w:
        for i, f in enumerate(frames):
            if i % 3 == 0:
                w.begin_path(f"p{i // 3}", "shapes", i, "val" if i // 3 == 1 else "train")
            w.add(f)
    return frames


def test_round_trip_and_split_by_path(tmp_path):
    frames = write(tmp_path)
    ds = SyntheticDepthDataset(tmp_path / "ds")
    assert len(ds) == 6 and ds.camera == CAM
    for f, item in zip(frames, (ds[i] for i in range(6)), strict=False):
        assert np.array_equal(item["rgb"], f.rgb)
        assert np.abs(item["depth_mm"] - f.depth_mm).max() <= 0.0051  # 0.01 mm quantisation (+ float32)
        assert np.array_equal(item["valid"], f.valid)
        assert np.allclose(item["pose"], f.pose)
    val = SyntheticDepthDataset(tmp_path / "ds", split="val")
    assert [r["path"] for r in val.rows] == ["p1"] * 3
    info = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert info["frames"] == 6 and [p["count"] for p in info["paths"]] == [3, 3]


def test_depth_encoding_never_clips_to_a_wrong_value():
    d = np.array([0.0, 0.004, 1.234, 655.35, 700.0, np.nan], np.float32)
    out = decode_depth(encode_depth(d))
    assert out[2] == pytest.approx(1.23, abs=0.006) and out[3] == pytest.approx(655.35, abs=0.01)
    assert out[4] == 0 and out[5] == 0 and out[0] == 0


def test_interrupted_writer_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with DatasetWriter(tmp_path / "ds", CAM) as w:
            w.begin_path("p0", "shapes", 0)
            w.add(fake_frame(0))
            raise RuntimeError("power cut")
    assert os.listdir(tmp_path) == []


def test_wrong_frame_size_is_refused(tmp_path):
    with DatasetWriter(tmp_path / "ds", CAM) as w:
        w.begin_path("p0", "shapes", 0)
        other = CameraIntrinsics(60.0, 55.0, 20.0, 20.0, 40, 40)
        with pytest.raises(InputError, match="80x64"):
            w.add(fake_frame(0, other))
        w.add(fake_frame(1))


def test_missing_and_mismatched_files_are_refused(tmp_path):
    write(tmp_path)
    root = tmp_path / "ds"
    (root / "frames" / "000004_depth.png").unlink()
    with pytest.raises(InputError, match="missing 1 file"):
        SyntheticDepthDataset(root)
    write(tmp_path, name="ds2")
    root = tmp_path / "ds2"
    cv2.imwrite(str(root / "frames" / "000002_rgb.png"), np.zeros((10, 10, 3), np.uint8))
    ds = SyntheticDepthDataset(root)
    with pytest.raises(InputError, match="does not match the camera size"):
        ds[2]
    info = json.loads((root / "dataset.json").read_text())
    info["frames"] = 99
    (root / "dataset.json").write_text(json.dumps(info))
    with pytest.raises(InputError, match="lists 6 frames"):
        SyntheticDepthDataset(root)
    with pytest.raises(InputError, match=r"no dataset.json"):
        SyntheticDepthDataset(tmp_path)


def test_render_dataset_streams_scenario_frames(tmp_path):
    scenario = shapes_scenario(seed=2, n_blobs=5)
    out = render_dataset(["shapes"], tmp_path / "r", frames=6, paths=2, seed=3, camera=CAM, val_every=2,
                         scenarios={"shapes": scenario})
    ds = SyntheticDepthDataset(out)
    assert len(ds) == 6 and {r["split"] for r in ds.rows} == {"train", "val"}
    item = ds[0]
    assert item["valid"].mean() >= scenario.strategy.min_valid_fraction
    assert item["rgb"].std() > 1.0


def test_render_cli_and_refusal_to_overwrite(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["render", "shapes", "-o", str(out), "--frames", "3", "--paths", "1", "--size", "64x80"]) == 0
    assert len(SyntheticDepthDataset(out)) == 3
    before = sorted(p.name for p in (out / "frames").iterdir())
    assert main(["render", "shapes", "-o", str(out), "--frames", "3", "--paths", "1"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert sorted(p.name for p in (out / "frames").iterdir()) == before
    assert main(["render", "shapes", "-o", str(tmp_path / "x"), "--frames", "2", "--paths", "3"]) == 2
    assert main(["render", "liver", "-o", str(tmp_path / "y"), "--frames", "2"]) == 2
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []
