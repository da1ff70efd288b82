"""Recorded video -> depth maps, point clouds, timings, scene sequences; the CLI; bad input leaves nothing behind."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

from SurgicalAICore.errors import InputError, ModelError, OperationCancelled
from SurgicalAICore.progress import CancelToken
from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics
from SurgicalDepthLib.depth.loaders import load_depth_model as load_model
from SurgicalDepthLib.depth.pipeline import FrameProcessor, process_video
from SurgicalDepthLib.video.sources import Frame


class BrightnessDepth:
    """A stand-in depth estimator with a known answer: depth (mm) = 20 + red / 4."""

    card = {}

    def __init__(self):
        self.calls = 0

    def predict(self, rgb):
        self.calls += 1
        return 20.0 + rgb[:, :, 0].astype(np.float32) / 4.0


def scope_frame(i: int, w: int = 80, h: int = 64) -> np.ndarray:
    """A frame inside a circular field stop (black outside), a red gradient that shifts with i."""
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[..., 0] = (100 + xx + 3 * i).clip(0, 255)
    rgb[..., 1] = 80
    rgb[..., 2] = 60
    outside = (xx - w / 2 + 0.5) ** 2 + (yy - h / 2 + 0.5) ** 2 > (0.45 * h) ** 2
    rgb[outside] = 0
    return rgb


def tiny_model_folder(path, input_size=(64, 96)):
    """A real (randomly initialised) CompactDepthNet model folder, small enough for tests."""
    import torch

    from SurgicalDepthLib.depth.model import depth_card, save_depth_model
    from SurgicalDepthLib.depth.network import build_depth_network

    torch.manual_seed(0)
    net = build_depth_network({"channels": [4, 4, 8, 8, 8], "blocks": [0, 0, 0, 0, 0]})
    save_depth_model(path, net, depth_card("tiny-test", net, input_size=input_size))
    return path


def write_folder(folder, frames):
    folder.mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"img_{i:03d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    return folder


def test_folder_to_depth_files_and_scene(tmp_path, scene):
    frames = [scope_frame(i) for i in range(5)]
    folder = write_folder(tmp_path / "frames", frames)
    camera = CameraIntrinsics(60.0, 60.0, 39.5, 31.5, 80, 64, (-0.05, 0.0, 0.0, 0.0, 0.0))
    model = BrightnessDepth()
    seen = []
    summary = process_video(
        folder,
        camera,
        model,
        out_dir=tmp_path / "out",
        scene=scene,
        max_points=500,
        progress=lambda f, m: seen.append(f),
    )
    assert summary.frames == 5 and model.calls == 5 and seen[-1] == 1.0
    out = tmp_path / "out"
    for i, frame in enumerate(frames):
        depth = np.load(out / f"img_{i:03d}.npy")
        assert depth.dtype == np.float32 and depth.shape == (64, 80)
        inside = frame.max(axis=2) > 30
        inner = cv2.erode(inside.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        assert np.allclose(depth[inner], 20 + frame[inner, 0] / 4.0)
        assert np.all(depth[~inside] == 0)  # the field stop is found and has no depth
        assert (out / f"img_{i:03d}.ply").is_file()
    rows = list(csv.DictReader(open(out / "timings.csv")))
    assert [r["name"] for r in rows] == [f"img_{i:03d}" for i in range(5)]
    assert all(0 < int(r["points"]) <= 500 and float(r["infer_ms"]) >= 0 for r in rows)
    assert CameraIntrinsics.load_json(out / "camera.json") == camera
    browser = summary.scene_nodes["browser"]
    assert browser.GetNumberOfItems() == 5
    for seq in summary.scene_nodes["sequences"].values():
        assert seq.GetNumberOfDataNodes() == 5
    assert not list(tmp_path.glob(".tmp-*"))


def test_mp4_through_the_pipeline_one_item_per_frame(tmp_path, scene):
    path = tmp_path / "scope.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 20, (80, 64))
    for i in range(7):
        writer.write(cv2.cvtColor(scope_frame(i), cv2.COLOR_RGB2BGR))
    writer.release()
    summary = process_video(path, None, BrightnessDepth(), scene=scene, max_points=300)
    seq = summary.scene_nodes["sequences"]["pointcloud"]
    assert seq.GetNumberOfDataNodes() == 7
    values = [float(seq.GetNthIndexValue(i)) for i in range(7)]
    assert np.all(np.diff(values) > 0)
    assert summary.camera.width == 80 and summary.out_dir is None


def bad_cases(tmp_path):
    good = write_folder(tmp_path / "good", [scope_frame(i) for i in range(3)])
    mixed = write_folder(tmp_path / "mixed", [scope_frame(0), scope_frame(1, w=96)])
    grey16 = tmp_path / "grey16"
    grey16.mkdir()
    cv2.imwrite(str(grey16 / "a.png"), np.full((64, 80), 4000, np.uint16))
    badvideo = tmp_path / "bad.avi"
    badvideo.write_bytes(b"\x00" * 5000)
    wrong_camera = CameraIntrinsics.from_fov(640, 360, 60)
    return [
        (dict(source=mixed), InputError, "frame 1 is 96x64"),
        (dict(source=grey16), InputError, "16-bit"),
        (dict(source=badvideo), InputError, "bad.avi"),
        (dict(source=good, camera=wrong_camera), InputError, "another aspect ratio"),
        (dict(source=good, model=None, model_path=tmp_path / "no_such_model"), ModelError, "not found"),
        (dict(source=good, scene_budget_bytes=1e4), InputError, "would need about"),
    ]


def test_bad_input_leaves_scene_and_output_untouched(tmp_path, scene, snapshot):
    before = snapshot(scene)
    for i, (kwargs, error, message) in enumerate(bad_cases(tmp_path)):
        kwargs.setdefault("model", BrightnessDepth())
        out = tmp_path / f"out{i}"
        with pytest.raises(error, match=message):
            process_video(
                kwargs.pop("source"), kwargs.pop("camera", None), out_dir=out, scene=scene, device="cpu", **kwargs
            )
        assert not out.exists(), message
        assert snapshot(scene) == before, message
    assert not list(tmp_path.glob(".tmp-*"))


def test_cancel_and_non_empty_output(tmp_path, scene, snapshot):
    folder = write_folder(tmp_path / "f", [scope_frame(i) for i in range(4)])
    token = CancelToken()
    model = BrightnessDepth()
    before = snapshot(scene)

    def cancel_after_two(result):
        if result.index == 1:
            token.cancel()

    with pytest.raises(OperationCancelled):
        process_video(
            folder, None, model, out_dir=tmp_path / "o", scene=scene, cancel=token, on_result=cancel_after_two
        )
    assert model.calls == 2 and not (tmp_path / "o").exists() and snapshot(scene) == before
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    with pytest.raises(InputError, match="not empty"):
        process_video(folder, None, model, out_dir=tmp_path / "full")
    assert (tmp_path / "full" / "x").read_text() == "keep me"


def test_frame_processor_with_a_real_network(tmp_path):
    model = load_model(tiny_model_folder(tmp_path / "tiny"), "cpu")
    processor = FrameProcessor(model, None, max_points=1000)
    result = processor.process(Frame(0, 0.0, scope_frame(0), "f0"))
    assert result.depth_mm.shape == (64, 80) and result.depth_mm.dtype == np.float32
    assert (result.depth_mm > 0).mean() > 0.4 and np.all(result.depth_mm[scope_frame(0).max(axis=2) == 0] == 0)
    assert 0 < len(result.cloud) <= 1000 and result.poly.GetNumberOfPoints() == len(result.cloud)
    assert set(result.timings) == {"read", "prep", "infer", "cloud"}
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "missing", "cpu")
    with pytest.raises(ModelError, match="No depth model"):
        FrameProcessor(None)


def test_cli_depth(tmp_path, capsys):
    from surgicalai.cli import main

    frames = [scope_frame(i) for i in range(3)]
    folder = write_folder(tmp_path / "frames", frames)
    model = tiny_model_folder(tmp_path / "tiny")
    cam = tmp_path / "cam.yml"
    from SurgicalDepthLib.camera.files import save_camera

    save_camera(CameraIntrinsics.from_fov(160, 128, 60), cam)  # same aspect ratio: scaled to 80x64
    assert (
        main(
            [
                "depth",
                str(folder),
                "-o",
                str(tmp_path / "out"),
                "--model",
                str(model),
                "--camera",
                str(cam),
                "--device",
                "cpu",
                "--points",
                "200",
            ]
        )
        == 0
    )
    out = tmp_path / "out"
    assert sorted(p.name for p in out.glob("*.npy")) == ["img_000.npy", "img_001.npy", "img_002.npy"]
    assert len(list(out.glob("*.ply"))) == 3 and (out / "timings.csv").is_file()
    assert CameraIntrinsics.load_json(out / "camera.json").fx == pytest.approx(
        CameraIntrinsics.from_fov(160, 128, 60).fx / 2
    )
    assert "3 frames" in capsys.readouterr().out
    # errors: one line, exit 2, nothing written
    assert main(["depth", str(folder), "-o", str(tmp_path / "o2"), "--model", str(tmp_path / "nope")]) == 2
    assert main(["depth", str(tmp_path / "none.mp4"), "-o", str(tmp_path / "o3")]) == 2
    err = capsys.readouterr().err
    assert "Depth model folder not found" in err and "Input not found" in err
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()


def test_field_stop_mask_is_cached_and_refreshed():
    full = np.full((64, 80, 3), 120, np.uint8)  # no field stop: a microscope or a cropped endoscope
    scope = scope_frame(0)
    proc = FrameProcessor(BrightnessDepth(), None, max_points=None, mask_every=3)
    zero_outside = []
    for i, rgb in enumerate([full, full, scope, scope, scope, scope]):
        depth = proc.process(Frame(i, i / 30, rgb, f"f{i}")).depth_mm
        zero_outside.append(bool(np.all(depth[scope.max(axis=2) == 0] == 0)))
    # the cached full-frame mask is kept for at most mask_every frames, then the field stop is found
    assert zero_outside == [False, False, False, True, True, True]
