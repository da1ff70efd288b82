"""Segmentation model folders: card schema, save/load round trip, TorchScript, and every way a folder can be bad."""

import json

import pytest
import torch

from SurgicalAICore.errors import InputError, ModelError
from SurgicalAICore.model_folder import sha256_of
from SegmentationAILib.seg_model import (
    SEG_SCHEMA,
    build_network,
    load_segmentation_model,
    save_segmentation_model,
    validate_seg_card,
)
from SegmentationAILib.synthetic import save_tiny_model, tiny_card


@pytest.fixture
def tiny(tmp_path):
    return save_tiny_model(tmp_path / "tiny")


def _edit_card(folder, **changes):
    card = json.loads((folder / "model.json").read_text())
    for key, value in changes.items():
        if value is None:
            card.pop(key, None)
        else:
            card[key] = value
    (folder / "model.json").write_text(json.dumps(card))
    return card


def test_round_trip_gives_identical_outputs(tiny):
    model = load_segmentation_model(tiny.path, device="cpu")
    assert model.path == tiny.path and model.device.type == "cpu" and not model.network.training
    assert [e["name"] for e in model.labels] == [e["name"] for e in tiny_card()["labels"]]
    torch.manual_seed(0)
    reference = build_network(tiny_card())
    reference.load_state_dict(torch.load(tiny.weights_path, weights_only=True))
    reference.eval()
    x = torch.randn(1, 1, 32, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model.network(x), reference(x))
    assert model.network(x).shape[1] == len(model.labels) + 1


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_torchscript_folder_loads(tmp_path):
    card = tiny_card()
    net = build_network(card).eval()
    scripted = torch.jit.trace(net, torch.zeros(1, 1, 32, 32, 32))
    folder = save_segmentation_model(tmp_path / "ts", scripted, card)
    assert folder.card["weights_format"] == "torchscript"
    model = load_segmentation_model(folder.path, device="cpu")
    x = torch.randn(1, 1, 32, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model.network(x), net(x), atol=1e-5)


def test_save_refuses_existing_folder_and_wrong_output_count(tmp_path, tiny):
    with pytest.raises(InputError, match="already exists"):
        save_segmentation_model(tiny.path, build_network(tiny_card()), tiny_card())
    card = tiny_card()
    card["labels"] = card["labels"][:3]
    with pytest.raises(InputError, match="outputs"):
        save_segmentation_model(tmp_path / "x", build_network(tiny_card()), card)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"labels": [{"value": 1, "name": "a", "color": [1, 0, 0]}, {"value": 3, "name": "b", "color": [0, 1, 0]}]},
            "run 1..2",
        ),
        ({"labels": [{"value": 1, "name": "a", "color": [2, 0, 0]}]}, "colour"),
        ({"labels": []}, "empty"),
        ({"normalization": []}, "channel"),
        ({"spacing": [3.0, 0.0, 3.0]}, "spacing"),
        ({"patch_size": [30, 32, 32]}, "multiples of 16"),
        ({"modality": "PET"}, "modality"),
        ({"architecture": {"name": "SwinUNETR", "channels": [4, 8], "strides": [2]}}, "not supported"),
        ({"postprocessing": {"largest_component": ["nope"]}}, "unknown label"),
        ({"inference": {"tta_axes": [3]}}, "tta_axes"),
    ],
)
def test_card_validation(change, message):
    card = tiny_card()
    card.update(change)
    card.update({"format_version": 1, "weights": "model.pt", "weights_format": "state_dict"})
    with pytest.raises(ModelError, match=message):
        validate_seg_card(card)


def test_schema_lists_the_contract_fields():
    assert {"modality", "channels", "labels", "spacing", "patch_size", "normalization", "architecture"} <= set(
        SEG_SCHEMA.required
    )
    assert {"preprocessing", "postprocessing", "inference"} <= set(SEG_SCHEMA.optional)


# --- bad model folders: one clear ModelError each ------------------------------------------------


def test_missing_folder(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_segmentation_model(tmp_path / "nowhere", device="cpu")


def test_corrupt_card(tiny):
    (tiny.path / "model.json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        load_segmentation_model(tiny.path, device="cpu")


def test_corrupt_weights_with_matching_hash(tiny):
    tiny.weights_path.write_bytes(b"garbage, not a torch file")
    (tiny.path / "weights.sha256").write_text(sha256_of(tiny.weights_path) + "  model.pt\n")
    with pytest.raises(ModelError, match="Cannot read model weights"):
        load_segmentation_model(tiny.path, device="cpu")


def test_hash_mismatch(tiny):
    data = bytearray(tiny.weights_path.read_bytes())
    data[len(data) // 2] ^= 0x01
    tiny.weights_path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="SHA-256"):
        load_segmentation_model(tiny.path, device="cpu")


def test_unknown_card_field(tiny):
    _edit_card(tiny.path, colour="red")
    with pytest.raises(ModelError, match="unknown field"):
        load_segmentation_model(tiny.path, device="cpu")


@pytest.mark.parametrize(("field", "value", "message"), [
    ("orientation", "RAX", "orientation 'RAX' is not three axis codes"),
    ("orientation", "RRS", "orientation 'RRS' is not three axis codes"),
    ("inference", {"pad": "edge"}, "inference pad must be 'zero' or 'minimum'"),
])
def test_bad_orientation_or_padding_is_one_line(tiny, field, value, message):
    _edit_card(tiny.path, **{field: value})
    with pytest.raises(ModelError, match=message) as error:
        load_segmentation_model(tiny.path, device="cpu")
    assert "\n" not in str(error.value)


def test_orientation_and_air_padding_are_accepted(tiny):
    _edit_card(tiny.path, orientation="LPS", inference={"pad": "minimum"})
    model = load_segmentation_model(tiny.path, device="cpu")
    assert model.card["orientation"] == "LPS" and model.card["inference"]["pad"] == "minimum"


def test_wrong_label_count(tiny):
    card = json.loads((tiny.path / "model.json").read_text())
    _edit_card(tiny.path, labels=card["labels"] + [{"value": 6, "name": "extra", "color": [0, 0, 1]}])
    with pytest.raises(ModelError, match="wrong label count"):
        load_segmentation_model(tiny.path, device="cpu")


def test_weights_not_matching_architecture(tiny):
    card = json.loads((tiny.path / "model.json").read_text())
    arch = dict(card["architecture"], channels=[8, 16, 32])
    _edit_card(tiny.path, architecture=arch)
    with pytest.raises(ModelError, match="do not fit"):
        load_segmentation_model(tiny.path, device="cpu")
