"""Training on synthetic 3-D shapes generated here: the network must learn them, and the model
folder it writes must load and segment through the extension's own inference."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

SPACING = (2.0, 2.0, 2.5)  # mm along i, j, k (anisotropic on purpose)


def make_case(seed: int, n: int = 32, spacing=SPACING, name: str | None = None):
    """A noisy volume with a bright ball (label 1) and a brighter box (label 2) at random places."""
    from SegmentationAILib.cases import Case

    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[:n, :n, :n]
    image = rng.normal(0, 20, (n, n, n)).astype(np.float32) - 100
    label = np.zeros((n, n, n), np.uint8)
    c = rng.uniform(10, n - 10, 3)
    r = rng.uniform(5, 8)
    ball = (z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 < r * r
    image[ball] += 150
    label[ball] = 1
    c = rng.uniform(8, n - 8, 3)
    h = rng.uniform(3, 5)
    box = (abs(z - c[0]) < h) & (abs(y - c[1]) < h) & (abs(x - c[2]) < h) & ~ball
    image[box] += 300
    label[box] = 2
    img = sitk.GetImageFromArray(image)
    img.SetSpacing(spacing)
    img.SetOrigin((-10.0, 5.0, 3.0))
    lab = sitk.GetImageFromArray(label)
    lab.CopyInformation(img)
    return Case(name or f"case{seed}", [img], {"label": lab})


def tiny_settings(**overrides):
    from SegmentationAILib.training.transforms import AugmentationSettings
    from SegmentationAILib.training.settings import TrainingSettings

    s = TrainingSettings(patch_size=[32, 32, 32], unet_channels=[8, 16, 32], unet_strides=[2, 2], num_res_units=1,
                         epochs=8, steps_per_epoch=6, batch_size=2, learning_rate=1e-2, spacing=list(SPACING),
                         augmentation=AugmentationSettings.none(), device="cpu", threads=1, seed=0)
    for k, v in overrides.items():
        setattr(s, k, v)
    return s


def untrained_dice(card, val_case, mapping, seed):
    from SegmentationAILib.seg_model import build_network
    from SegmentationAILib.training.loop import dice_per_class, predict_prepared, prepare_case

    torch.manual_seed(seed)
    net = build_network(card)
    prepared = prepare_case(val_case, mapping, card)
    pred = predict_prepared(net, prepared.data["image"], card["patch_size"][::-1], torch.device("cpu"))
    return float(np.nanmean(dice_per_class(pred, prepared.data["label"][0], len(card["labels"]))))


@pytest.mark.slow
def test_training_learns_shapes_and_writes_a_loadable_model(tmp_path):
    from SegmentationAILib.evaluation import evaluate_model
    from SegmentationAILib.label_mapping import LabelMapping
    from SegmentationAILib.seg_model import load_segmentation_model
    from SegmentationAILib.training.loop import train

    cases = [make_case(s) for s in range(6)]
    mapping = LabelMapping.parse(["ball=1", "box=2"])
    progress = []
    result = train(cases[:4], mapping, tmp_path / "model", tiny_settings(), val_cases=cases[4:],
                   progress=lambda f, m: progress.append(f))

    before = untrained_dice(result.card, cases[4], mapping, seed=0)
    assert before < 0.3
    assert result.best_val_dice > 0.8
    assert progress == sorted(progress) and progress[-1] == pytest.approx(1.0)

    # the model folder: card, metrics and curves; loads and segments through the inference path
    model = load_segmentation_model(tmp_path / "model", device="cpu")
    assert [lab["name"] for lab in model.labels] == ["ball", "box"]
    assert model.card["training"]["train_cases"] == ["case0", "case1", "case2", "case3"]
    assert model.card["metrics"]["validation_mean_dice"] == pytest.approx(result.best_val_dice)
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert len(metrics["epochs"]) == 8 and metrics["best_epoch"] == result.best_epoch
    assert (tmp_path / "model" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ev = evaluate_model([tmp_path / "model"], cases[4:], mapping, device="cpu", tta=False)
    assert ev.mean_dice() > 0.75  # on the original grid, through segment_image


@pytest.mark.slow
def test_finetuning_with_a_new_label_set_replaces_the_head(tmp_path):
    from SegmentationAILib.label_mapping import LabelMapping
    from SegmentationAILib.seg_model import load_segmentation_model
    from SegmentationAILib.training.loop import train

    cases = [make_case(s) for s in range(4)]
    base = train(cases[:3], LabelMapping.parse(["ball=1", "box=2"]), tmp_path / "base",
                 tiny_settings(epochs=2, steps_per_epoch=3), val_cases=cases[3:])
    # new label set: one merged class
    merged = LabelMapping.parse(["shapes=1,2"])
    train(cases[:3], merged, tmp_path / "tuned", tiny_settings(epochs=1, steps_per_epoch=2),
                  val_cases=cases[3:], init_model=base.model_path)
    model = load_segmentation_model(tmp_path / "tuned", device="cpu")
    assert [lab["name"] for lab in model.labels] == ["shapes"]
    assert model.card["training"]["finetuned_from"] == str(base.model_path)
    fresh = model.card["training"]["fresh_tensors"]
    assert fresh and all(k.startswith("model.2") for k in fresh)  # only the output block is new
    # the input side is inherited from the base model
    base_card = load_segmentation_model(tmp_path / "base", device="cpu").card
    for key in ("spacing", "patch_size", "normalization", "architecture"):
        assert model.card[key] == base_card[key]
