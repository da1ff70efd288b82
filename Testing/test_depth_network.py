"""Compact depth network and the depth-model loader."""
import json

import numpy as np
import pytest
import torch

from SurgicalAICore.checksums import FILE_RECORD_SUFFIX
from SurgicalAICore.errors import InputError, ModelError
from SurgicalDepthLib.depth.model import DEPTH_SCHEMA, align_scale, default_model_path, depth_card, save_depth_model
from SurgicalDepthLib.depth.loaders import load_depth_model
from SurgicalDepthLib.depth.network import build_depth_network, count_macs, count_parameters


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return build_depth_network().eval()


def test_shape_size_and_positive_metric_output(net):
    assert count_parameters(net) <= 5_000_000
    assert count_macs(net, 256, 320) < 1.5e9
    with torch.no_grad():
        for h, w in ((256, 320), (64, 96), (224, 288)):
            y = net(torch.randn(2, 3, h, w))
            assert y.shape == (2, 1, h, w) and torch.all(y > 0) and torch.all(y <= 300.0 + 1e-3)


def test_torchscript_export_gives_the_same_depth(net, tmp_path):
    scripted = torch.jit.script(net)
    x = torch.randn(1, 3, 128, 160)
    with torch.no_grad():
        assert torch.allclose(scripted(x), net(x), rtol=1e-4, atol=1e-4)
    path = tmp_path / "depth.ts"
    torch.jit.save(scripted, str(path))
    est = load_depth_model(path, "cpu")
    assert not est.is_metric and est.input_size is None
    d = est.predict(np.zeros((100, 130, 3), np.uint8))  # padded internally to multiples of 32
    assert d.shape == (100, 130) and d.dtype == np.float32


def test_bare_torchscript_file_is_recorded_then_verified(net, tmp_path):
    path = tmp_path / "depth.ts"
    torch.jit.save(torch.jit.script(net), str(path))
    first = load_depth_model(path, "cpu").predict(np.zeros((64, 80, 3), np.uint8))
    record = tmp_path / ("depth.ts" + FILE_RECORD_SUFFIX)
    assert record.read_text().endswith("  depth.ts\n")
    assert np.array_equal(load_depth_model(path, "cpu").predict(np.zeros((64, 80, 3), np.uint8)), first)
    torch.manual_seed(1)  # another valid depth network put in its place
    torch.jit.save(torch.jit.script(build_depth_network().eval()), str(path))
    with pytest.raises(ModelError, match=r"depth\.ts does not match its SHA-256") as info:
        load_depth_model(path, "cpu")
    assert "\n" not in str(info.value)


def test_model_folder_round_trip_and_predict_at_input_resolution(net, tmp_path):
    folder = save_depth_model(tmp_path / "m", net, depth_card("m", net, (128, 160)))
    est = load_depth_model(folder.path, "cpu")
    assert est.is_metric and est.input_size == (128, 160) and est.device.type == "cpu"
    assert est.card["architecture"]["parameters"] == count_parameters(net)
    rgb = np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8)
    d = est.predict(rgb)
    assert d.shape == (90, 120) and np.all(d > 0)
    batch = est.predict_batch([rgb, rgb[::-1].copy()])
    assert batch.shape == (2, 90, 120) and np.allclose(batch[0], d, rtol=1e-4, atol=1e-3)
    with pytest.raises(InputError, match="RGB"):
        est.predict(np.zeros((90, 120), np.uint8))
    with pytest.raises(InputError, match="uint8"):
        est.predict(np.zeros((90, 120, 3), np.float32))


def test_torchscript_model_folder_loads(net, tmp_path):
    from SurgicalAICore.model_folder import write_model_folder

    card = depth_card("ts", net, (128, 160))
    card.pop("architecture")
    folder = write_model_folder(tmp_path / "ts", card, torch.jit.script(net), DEPTH_SCHEMA)
    est = load_depth_model(folder.path, "cpu")
    assert est.predict(np.zeros((128, 160, 3), np.uint8)).shape == (128, 160)


def test_corrupt_models_give_clear_errors(net, tmp_path):
    folder = save_depth_model(tmp_path / "m", net, depth_card("m", net))
    data = bytearray(folder.weights_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    folder.weights_path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="SHA-256"):
        load_depth_model(folder.path, "cpu")
    bad = tmp_path / "bad.ts"
    bad.write_bytes(b"not a torchscript archive")
    with pytest.raises(ModelError, match="Cannot read depth model"):
        load_depth_model(bad, "cpu")
    with pytest.raises(ModelError, match="not found"):
        load_depth_model(tmp_path / "nothing", "cpu")
    # weights that do not fit the architecture in the card
    small = build_depth_network({"channels": (8, 8, 16, 16, 32), "blocks": (0, 0, 0, 0, 0)})
    card = depth_card("x", net)
    folder = save_depth_model(tmp_path / "x", small, card)
    with pytest.raises(ModelError, match="do not fit"):
        load_depth_model(folder.path, "cpu")
    card = json.loads((folder.path / "model.json").read_text())
    card["task"] = "segmentation"
    (folder.path / "model.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="not a 'depth' model"):
        load_depth_model(folder.path, "cpu")


def test_bundled_default_model_loads():
    if not default_model_path().is_dir():
        pytest.skip("no bundled depth model in this checkout")
    est = load_depth_model(None, "cpu")
    d = est.predict(np.full((256, 320, 3), 120, np.uint8))
    assert d.shape == (256, 320) and np.all(np.isfinite(d)) and np.all(d > 0)


def test_scale_alignment():
    rng = np.random.default_rng(1)
    ref = rng.uniform(10, 100, (20, 30))
    assert align_scale(ref / 7.0, ref) == pytest.approx(7.0)
    assert align_scale(ref / 7.0, ref, method="lstsq") == pytest.approx(7.0)
    noisy = ref / 3.0 * rng.uniform(0.9, 1.1, ref.shape)
    assert align_scale(noisy, ref, method="lstsq") == pytest.approx(3.0, rel=0.05)
    with pytest.raises(InputError, match="No pixel"):
        align_scale(np.zeros((4, 4)), ref[:4, :4])
    with pytest.raises(InputError, match="Unknown"):
        align_scale(ref, ref, method="mean")


def test_bundled_models_resolve_by_name_and_adaptation_starts_from_the_video_model(tmp_path):
    from SurgicalAICore.resources import models_dir
    from SurgicalDepthLib.depth.adapt import _source_network
    from SurgicalDepthLib.depth.model import resolve_model_path, video_model_path

    video = models_dir() / "endoscopy-depth-video"
    if not video.is_dir():
        pytest.skip("no bundled video depth model in this checkout")
    assert resolve_model_path("endoscopy-depth-video") == video == video_model_path()
    assert resolve_model_path(None) == default_model_path()
    assert load_depth_model("endoscopy-depth-video", "cpu").card["name"] == "endoscopy-depth-video"
    # a path that exists wins over a bundled name; a missing path with folders is not a name
    (tmp_path / "endoscopy-depth-video").mkdir()
    assert resolve_model_path(tmp_path / "endoscopy-depth-video") == tmp_path / "endoscopy-depth-video"
    with pytest.raises(ModelError, match="not found"):
        load_depth_model(tmp_path / "missing" / "endoscopy-depth-video", "cpu")
    assert _source_network(None)[2] == video
    assert _source_network("endoscopy-depth")[2] == default_model_path()
