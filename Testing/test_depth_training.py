"""Depth training (tiny runs on a tiny synthetic dataset), resume, corrupt checkpoints, evaluation CLI."""
import json

import numpy as np
import pytest

from SurgicalAICore.errors import InputError, ModelError
from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics
from SurgicalDepthLib.depth.training import TrainConfig, augment_sample, load_checkpoint, train_depth_model
from SurgicalDepthLib.synthetic.renderer import RenderedFrame
from SurgicalDepthLib.synthetic.dataset import DatasetWriter
from surgicalai.cli import main

CAM = CameraIntrinsics(50.0, 50.0, 47.5, 31.5, 96, 64)
TINY = {"channels": (8, 8, 16, 16, 32), "blocks": (0, 0, 1, 0, 1), "out_stride": 4}


def slanted_frame(i):
    """A plane whose depth and brightness vary together: learnable in a few steps."""
    rng = np.random.default_rng(i)
    v, u = np.mgrid[0:CAM.height, 0:CAM.width].astype(np.float32)
    a, b, c = rng.uniform(20, 60), rng.uniform(-0.2, 0.2), rng.uniform(-0.3, 0.3)
    depth = (a + b * u + c * v).astype(np.float32)
    grey = np.clip(255 * (20.0 / depth) ** 2, 0, 255)
    rgb = np.stack([grey, grey * 0.6, grey * 0.5], -1).astype(np.uint8)
    return RenderedFrame(rgb, depth, depth > 0, np.eye(4), CAM)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("depthdata") / "ds"
    with DatasetWriter(root, CAM) as w:
        for i in range(16):
            if i % 4 == 0:
                w.begin_path(f"p{i // 4}", "planes" if i < 12 else "other", i, "val" if i // 4 == 2 else "train")
            w.add(slanted_frame(i))
    return root


def config(**kw):
    base = dict(steps=30, batch_size=4, crop=(64, 64), lr=3e-3, val_every=15, val_frames=4, checkpoint_every=10,
                hyper=dict(TINY), threads=1, device="cpu", seed=0)
    base.update(kw)
    return TrainConfig(**base)


def test_tiny_training_reduces_the_loss_and_writes_a_model(dataset, tmp_path):
    out = train_depth_model([str(dataset)], str(tmp_path / "model"), config(steps=60, augment=False))
    card = json.loads((out / "model.json").read_text())
    assert card["task"] == "depth" and card["training"]["steps"] == 60 and "val_median_abs_rel" in card["metrics"]
    history = json.loads((tmp_path / "model.checkpoints" / "history.json").read_text())
    losses = [r["loss"] for r in history["train"]]
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:10])
    assert (tmp_path / "model.checkpoints" / "curves.png").stat().st_size > 1000
    assert main(["eval-depth", str(out), str(dataset), "-o", str(tmp_path / "eval"), "--split", "val"]) == 0
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["frames"] == 4 and 0 <= summary["median"]["abs_rel"] < 1
    assert (tmp_path / "eval" / "per_frame.csv").read_text().count("\n") == 5


def test_resume_continues_from_the_checkpoint(dataset, tmp_path):
    out = tmp_path / "m"
    train_depth_model([str(dataset)], str(out), config(steps=10))
    ckpt = load_checkpoint(tmp_path / "m.checkpoints" / "last.pt")
    assert ckpt["step"] == 10
    train_depth_model([str(dataset)], str(out), config(steps=20), resume=True, overwrite=True)
    ckpt2 = load_checkpoint(tmp_path / "m.checkpoints" / "last.pt")
    assert ckpt2["step"] == 20
    steps = [r["step"] for r in json.loads(ckpt2["history"])["train"]]
    assert steps == list(range(1, 21))  # one history, continued, not restarted


def test_corrupt_checkpoint_is_a_clear_error_and_writes_no_model(dataset, tmp_path):
    work = tmp_path / "m.checkpoints"
    work.mkdir()
    (work / "last.pt").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelError, match="corrupt"):
        train_depth_model([str(dataset)], str(tmp_path / "m"), config(steps=5), resume=True)
    assert not (tmp_path / "m").exists()


def test_held_out_scenario_is_excluded_from_training(dataset, tmp_path):
    out = train_depth_model([str(dataset)], str(tmp_path / "m"), config(steps=4, val_every=2), val_scenario="other")
    card = json.loads((out / "model.json").read_text())
    assert card["training"]["held_out_scenario"] == "other"
    assert card["training"]["train_frames"] == 8  # 2 training paths of "planes"; "other" and the val path left out
    with pytest.raises(InputError, match="No frame of held-out scenario"):
        train_depth_model([str(dataset)], str(tmp_path / "n"), config(steps=2), val_scenario="missing")


def test_bad_training_inputs(dataset, tmp_path):
    with pytest.raises(InputError, match="multiples of 32"):
        train_depth_model([str(dataset)], str(tmp_path / "a"), config(crop=(50, 64)))
    for strength in (-0.1, 1.5):
        with pytest.raises(InputError, match="between 0 and 1"):
            train_depth_model([str(dataset)], str(tmp_path / "a"), config(augment_strength=strength))
    with pytest.raises(InputError, match=r"no dataset.json"):
        train_depth_model([str(tmp_path)], str(tmp_path / "b"), config())
    existing = tmp_path / "c"
    existing.mkdir()
    with pytest.raises(InputError, match="already exists"):
        train_depth_model([str(dataset)], str(existing), config())
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert not (tmp_path / "a.checkpoints").exists()


def test_augmentation_keeps_geometry_consistent():
    f = slanted_frame(3)
    rng = np.random.default_rng(0)
    for _ in range(10):
        img, d, v = augment_sample(f.rgb, f.depth_mm, f.valid, rng, (32, 64))
        assert img.shape == (32, 64, 3) and d.shape == v.shape == (32, 64)
        assert img.dtype == np.float32 and 0 <= img.min() and img.max() <= 1
        # depth values are a crop (maybe flipped) of the original: no interpolation, no rescaling
        assert np.isin(np.round(d[v], 4), np.round(f.depth_mm, 4)).all()


def test_leg_limit_stops_then_resume_continues_and_packed_checkpoint_resumes(dataset, tmp_path):
    """A leg stops on its own clock with a checkpoint; a packed (half-size) copy of it resumes."""
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "model"
    train_depth_model([str(dataset)], str(out), config(steps=30, leg_minutes=0.0))
    ckpt = tmp_path / "model.checkpoints" / "last.pt"
    assert load_checkpoint(ckpt)["step"] == 0 and out.is_dir()  # stopped before the first step, model written
    train_depth_model([str(dataset)], str(out), config(steps=12), resume=True, overwrite=True)
    assert load_checkpoint(ckpt)["step"] == 12
    script = Path(__file__).resolve().parents[1] / "scripts" / "depth_checkpoint_pack.py"
    packed, unpacked = tmp_path / "packed.pt", tmp_path / "model.checkpoints" / "unpacked.pt"
    subprocess.run([sys.executable, str(script), "pack", str(ckpt), str(packed)], check=True)
    assert packed.stat().st_size < 0.6 * ckpt.stat().st_size
    subprocess.run([sys.executable, str(script), "unpack", str(packed), str(unpacked)], check=True)
    unpacked.replace(ckpt)
    train_depth_model([str(dataset)], str(out), config(steps=20), resume=True, overwrite=True)
    assert load_checkpoint(ckpt)["step"] == 20
