"""Preprocessing, sliding-window inference with TTA and ensembles, post-processing, segment_image."""
import numpy as np
import pytest
import SimpleITK as sitk
import torch

from SurgicalAICore.errors import InputError, OperationCancelled
from SegmentationAILib.inference import count_windows, flip_sets, predict_probabilities
from SegmentationAILib.postprocessing import fill_holes, keep_largest_component, postprocess
from SegmentationAILib.preprocessing import normalize, prepare_input, resample_like, resample_to_spacing
from SurgicalAICore.progress import CancelToken
from SegmentationAILib.seg_model import SegmentationModel, load_segmentation_model
from SegmentationAILib.segmenter import segment_image
from SegmentationAILib.synthetic import save_tiny_model, synthetic_ct, tiny_card


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return load_segmentation_model(save_tiny_model(tmp_path_factory.mktemp("m") / "tiny").path, device="cpu")


class IntensityNet(torch.nn.Module):
    """A fixed 'network' whose class scores are simple functions of the intensity: any geometric slip
    (flip not undone, window misplaced) shows up in the output."""

    def __init__(self, classes):
        super().__init__()
        self.classes = classes

    def forward(self, x):
        return torch.cat([x[:, :1] * (c - 1.0) for c in range(self.classes)], dim=1)


def fake_model(classes=3, tta_axes=(0, 1, 2)):
    card = tiny_card(labels=[{"value": v, "name": f"l{v}", "color": [0.5, 0.5, 0.5]} for v in range(1, classes)])
    card["inference"] = {"overlap": 0.5, "blend": "gaussian", "tta": True, "tta_axes": list(tta_axes)}
    return SegmentationModel(card, IntensityNet(classes), torch.device("cpu"))


def test_flip_sets_and_window_count():
    assert flip_sets([]) == [()]
    assert sorted(flip_sets([0, 2])) == sorted([(), (2,), (4,), (2, 4)])
    assert count_windows((32, 32, 32), (32, 32, 32), 0.5) == 1
    assert count_windows((64, 40, 32), (32, 32, 32), 0.5) == 3 * 2 * 1


def test_sliding_window_tta_and_ensemble_match_direct_softmax():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(1, 40, 70, 50)).astype(np.float32)  # larger than the 32^3 patch: several windows
    model = fake_model()
    direct = torch.softmax(model.network(torch.from_numpy(image)[None]), dim=1)[0].numpy()
    seen = []
    probs = predict_probabilities(model, image, tta=True, progress=lambda f, m: seen.append(f))
    assert probs.shape == (3, *image.shape[1:])
    np.testing.assert_allclose(probs, direct, atol=1e-5)  # pointwise net: flips and blending must cancel out
    assert seen == sorted(seen) and seen[-1] == 1.0
    ensemble = predict_probabilities([model, model], image, tta=False)
    np.testing.assert_allclose(ensemble, direct, atol=1e-5)


def test_tta_averages_flipped_predictions():
    """A network that is NOT flip-invariant: TTA must average it with its mirrored self along k only."""

    class Ramp(torch.nn.Module):
        def forward(self, x):
            k = torch.linspace(0, 1, x.shape[2]).view(1, 1, -1, 1, 1).expand_as(x)
            return torch.cat([torch.zeros_like(x), 4 * k], dim=1)

    model = fake_model(classes=2, tta_axes=[2])
    model.network = Ramp()
    image = np.zeros((1, 32, 32, 32), np.float32)
    plain = predict_probabilities(model, image, tta=False, blend="constant", overlap=0.0)
    tta = predict_probabilities(model, image, tta=True, blend="constant", overlap=0.0)
    mirrored = plain[:, ::-1]
    np.testing.assert_allclose(tta, (plain + mirrored) / 2, atol=1e-5)
    assert not np.allclose(tta, plain)


def test_predict_cancel_mid_run():
    token = CancelToken()
    calls = []

    def progress(f, m):
        calls.append(f)
        if len(calls) == 3:
            token.cancel()

    with pytest.raises(OperationCancelled):
        predict_probabilities(fake_model(), np.zeros((1, 64, 64, 64), np.float32), progress=progress, cancel=token)
    assert len(calls) == 3


def test_predict_rejects_wrong_input(tiny_model):
    with pytest.raises(InputError, match="channel"):
        predict_probabilities(tiny_model, np.zeros((2, 8, 8, 8), np.float32))


def test_resampling_keeps_extent_and_labels_return_exactly():
    image = sitk.Image(40, 30, 20, sitk.sitkFloat32)
    image.SetSpacing((0.8, 1.1, 2.5))
    image.SetOrigin((5.0, -3.0, 7.0))
    image.SetDirection((0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    coarse = resample_to_spacing(image, (3.0, 3.0, 3.0))
    assert coarse.GetSize() == (11, 11, 17)
    assert coarse.GetOrigin() == image.GetOrigin() and coarse.GetDirection() == image.GetDirection()
    labels = sitk.GetImageFromArray(np.random.default_rng(0).integers(0, 4, (20, 30, 40)).astype(np.uint8))
    labels.CopyInformation(image)
    assert np.array_equal(sitk.GetArrayFromImage(resample_like(labels, image)), sitk.GetArrayFromImage(labels))


def test_ct_normalisation_and_zscore():
    out = normalize(np.array([-2000.0, 0.0, 2000.0]), {"type": "ct", "clip": [-1000, 1000], "mean": 0.0, "std": 500.0})
    np.testing.assert_allclose(out, [-2.0, 0.0, 2.0])
    mr = np.array([0.0, 0.0, 1.0, 3.0])
    z = normalize(mr, {"type": "zscore_foreground"})
    assert z[0] == 0 and z[2] == pytest.approx(-1.0) and z[3] == pytest.approx(1.0)


def test_clahe_and_denoise_change_the_input_but_keep_the_grid(tiny_model):
    noisy = np.random.default_rng(0).normal(40.0, 60.0, (32, 32, 32)).astype(np.int16)
    ct = sitk.GetImageFromArray(noisy)
    ct.SetSpacing((3.0, 3.0, 3.0))
    plain, grid = prepare_input([ct], tiny_model.card)
    denoised, grid2 = prepare_input([ct], tiny_model.card, denoise=True)
    equalised, _ = prepare_input([ct], tiny_model.card, clahe=True)
    assert plain.shape == denoised.shape == equalised.shape == (1, 32, 32, 32) and grid.GetSize() == grid2.GetSize()
    assert np.std(denoised) < 0.8 * np.std(plain)  # noise reduced
    assert not np.allclose(equalised, plain, atol=1e-3)


def test_largest_component_and_fill_holes():
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[1:5, 1:5, 1:5] = 1
    labels[8, 1, 1] = 1            # a stray island
    labels[2:9, 6:9, 6:9] = 2
    labels[5, 7, 7] = 0            # a hole inside structure 2
    kept = keep_largest_component(labels, [1])
    assert kept[8, 1, 1] == 0 and kept[2, 2, 2] == 1
    filled = fill_holes(labels, [2])
    assert filled[5, 7, 7] == 2
    both = postprocess(labels, {1: "a", 2: "b"}, largest_component=["a"], fill=True)
    assert both[8, 1, 1] == 0 and both[5, 7, 7] == 2


def test_segment_image_returns_labels_on_the_input_grid(tiny_model):
    ct, _ = synthetic_ct((50, 40, 30), spacing=(2.0, 2.5, 4.0))
    ct.SetOrigin((10.0, 20.0, -30.0))
    out = segment_image(ct, tiny_model, {"tta": False})
    assert out.GetSize() == ct.GetSize() and out.GetSpacing() == ct.GetSpacing() and out.GetOrigin() == ct.GetOrigin()
    assert out.GetPixelID() == sitk.sitkUInt8
    assert set(np.unique(sitk.GetArrayFromImage(out))) <= set(range(len(tiny_model.labels) + 1))
    with pytest.raises(InputError, match="Unknown segmentation option"):
        segment_image(ct, tiny_model, {"tta": False, "colour": 1})
