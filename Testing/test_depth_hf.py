"""Hugging Face Depth Anything folders load through load_depth_model (a tiny random model, offline)."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

transformers = pytest.importorskip("transformers")

from SurgicalAICore.checksums import RECORD_NAME  # noqa: E402
from SurgicalAICore.errors import ModelError  # noqa: E402
from SurgicalDepthLib.depth.hf import DISPARITY_FLOOR, is_hf_depth_folder  # noqa: E402
from SurgicalDepthLib.depth.loaders import load_depth_model  # noqa: E402
from SurgicalDepthLib.depth.model import align_scale  # noqa: E402

INPUT_HW = (56, 70)  # multiples of the 14-pixel patch
FRAME_HW = (64, 80)
MEAN, STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]


def tiny_depth_anything(folder, depth_type="relative"):
    """Save a ~140k-parameter random Depth Anything model and its preprocessor config in ``folder``."""
    backbone = transformers.Dinov2Config(
        hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64, image_size=56,
        patch_size=14, out_features=["stage1", "stage2", "stage3", "stage4"], reshape_hidden_states=False)
    config = transformers.DepthAnythingConfig(
        backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16, head_hidden_size=8, depth_estimation_type=depth_type,
        max_depth=20 if depth_type == "metric" else 1, initializer_range=0.2)
    torch.manual_seed(0)
    model = transformers.DepthAnythingForDepthEstimation(config).eval()
    with torch.no_grad():  # random heads give mostly zero disparity; lift it so the maps vary
        model.head.conv3.bias.fill_(0.5)
    model.save_pretrained(folder)
    pre = {"image_processor_type": "DPTImageProcessor", "do_normalize": True, "image_mean": MEAN,
           "image_std": STD, "keep_aspect_ratio": True, "ensure_multiple_of": 14,
           "size": {"height": 57, "width": 69}}  # rounded to 56 x 70 by the loader
    (folder / "preprocessor_config.json").write_text(json.dumps(pre))
    return model


def frame(seed=0):
    return np.random.default_rng(seed).integers(0, 256, (*FRAME_HW, 3), dtype=np.uint8)


def direct_output(est, model, rgb):
    """The HF model's own predicted_depth on the estimator's normalised input, as (1, 1, h, w)."""
    x, _, _ = est._prepare([rgb])
    with torch.no_grad():
        return model(pixel_values=x).predicted_depth.unsqueeze(1)


def at_frame_size(t):
    return F.interpolate(t, size=FRAME_HW, mode="bilinear", align_corners=False)[0, 0].numpy()


@pytest.fixture(scope="module")
def relative(tmp_path_factory):
    folder = tmp_path_factory.mktemp("da-relative")
    return folder, tiny_depth_anything(folder)


def test_relative_folder_loads_through_the_common_interface(relative):
    folder, _ = relative
    assert is_hf_depth_folder(folder)
    est = load_depth_model(folder, "cpu")
    assert not est.is_metric and est.input_size == INPUT_HW
    assert est.card["weights_format"] == "huggingface" and est.card["depth_unit"] == "relative"
    assert "align_scale" in est.card["alignment"]
    assert np.allclose(est.mean, MEAN) and np.allclose(est.std, STD)
    assert est.card["normalisation"] == {"mean": MEAN, "std": STD}
    d = est.predict(frame())
    assert d.shape == FRAME_HW and d.dtype == np.float32
    assert np.all(np.isfinite(d)) and np.all(d > 0) and d.std() > 0


def test_relative_depth_is_the_inverse_of_the_clamped_disparity(relative):
    folder, model = relative
    est = load_depth_model(folder, "cpu")
    rgb = frame(1)
    disparity = direct_output(est, model, rgb)
    floor = disparity.amax() * DISPARITY_FLOOR
    expected = at_frame_size(1.0 / disparity.clamp_min(floor))
    assert np.allclose(est.predict(rgb), expected, rtol=1e-4, atol=1e-5)


def test_metric_folder_gives_millimetres(tmp_path):
    model = tiny_depth_anything(tmp_path, "metric")
    est = load_depth_model(tmp_path, "cpu")
    assert est.is_metric and est.card["depth_unit"] == "mm" and "alignment" not in est.card
    rgb = frame(2)
    expected = at_frame_size(direct_output(est, model, rgb) * 1000.0)
    d = est.predict(rgb)
    assert np.allclose(d, expected, rtol=1e-4, atol=1e-3)
    assert 0 < d.max() <= 20_000.0  # sigmoid x max_depth 20 m


def test_relative_prediction_aligns_to_a_reference(relative):
    folder, _ = relative
    est = load_depth_model(folder, "cpu")
    rgb = frame(3)
    reference = np.linspace(40.0, 120.0, FRAME_HW[0] * FRAME_HW[1]).reshape(FRAME_HW).astype(np.float32)
    aligned = est.predict_aligned(rgb, reference)
    assert np.isclose(np.median(aligned), np.median(reference), rtol=1e-4)
    pred = est.predict(rgb)
    assert np.allclose(aligned, pred * align_scale(pred, reference), rtol=1e-6)
    fitted = pred * align_scale(pred, reference, method="lstsq")
    assert np.sum((fitted - reference) ** 2) <= np.sum((aligned - reference) ** 2) + 1e-3


def test_other_model_types_fall_through_to_our_format(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    assert not is_hf_depth_folder(tmp_path)
    with pytest.raises(ModelError, match=r"model.json"):
        load_depth_model(tmp_path, "cpu")


def test_corrupt_config_is_a_clear_model_error(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 16)
    assert is_hf_depth_folder(tmp_path)
    with pytest.raises(ModelError, match=r"config\.json is not valid JSON") as info:
        load_depth_model(tmp_path, "cpu")
    assert "\n" not in str(info.value)


def test_broken_weights_are_a_clear_model_error(tmp_path):
    tiny_depth_anything(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"broken")
    with pytest.raises(ModelError, match="Cannot load the Hugging Face depth model") as info:
        load_depth_model(tmp_path, "cpu")
    assert "\n" not in str(info.value)


def test_missing_transformers_says_how_to_install_it(relative, monkeypatch):
    folder, _ = relative
    monkeypatch.setitem(__import__("sys").modules, "transformers", None)  # makes the import fail
    with pytest.raises(ModelError, match="pip install transformers"):
        load_depth_model(folder, "cpu")


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_first_use_records_the_files_and_a_changed_one_is_refused(tmp_path):
    tiny_depth_anything(tmp_path)
    load_depth_model(tmp_path, "cpu")
    record = (tmp_path / RECORD_NAME).read_text()
    for name in ("config.json", "preprocessor_config.json", "model.safetensors"):
        assert f"  {name}\n" in record
    load_depth_model(tmp_path, "cpu")  # verified
    pre = json.loads((tmp_path / "preprocessor_config.json").read_text())
    pre["image_mean"] = [0.1, 0.1, 0.1]  # a quiet change that would shift every depth map
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(pre))
    with pytest.raises(ModelError, match=r"preprocessor_config\.json does not match its SHA-256") as info:
        load_depth_model(tmp_path, "cpu")
    assert "\n" not in str(info.value)


def test_sharded_weights_are_recorded_shard_by_shard(tmp_path):
    model = tiny_depth_anything(tmp_path / "full")
    model.save_pretrained(tmp_path / "sharded", max_shard_size="200KB")
    folder = tmp_path / "sharded"
    (folder / "preprocessor_config.json").write_text((tmp_path / "full" / "preprocessor_config.json").read_text())
    shards = sorted(folder.glob("model-*.safetensors"))
    assert len(shards) >= 2 and (folder / "model.safetensors.index.json").is_file()
    est = load_depth_model(folder, "cpu")
    assert np.allclose(est.predict(frame()), load_depth_model(tmp_path / "full", "cpu").predict(frame()))
    record = (folder / RECORD_NAME).read_text()
    assert all(f"  {shard.name}\n" in record for shard in shards) and "model.safetensors.index.json" in record
    _flip_a_byte(shards[-1])
    with pytest.raises(ModelError, match="SHA-256"):
        load_depth_model(folder, "cpu")
