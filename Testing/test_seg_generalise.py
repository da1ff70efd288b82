"""Training samples for a model that must generalise from one CT, and the air padding of short scans."""

import dataclasses

import numpy as np
import pytest

from SegmentationAILib.inference import pad_with_minimum
from SegmentationAILib.training.generalise import AIR_HU, GeneraliseSettings, GeneralisingSampler

STILL = GeneraliseSettings(slab_prob=0.0, circle_prob=0.0, scale=(1.0, 1.0), axis_jitter=0.0, rotate_axial_deg=0.0,
                           tilt_deg=0.0, mirror_head_foot_prob=0.0, thick_slice_prob=0.0, phase_prob=0.0,
                           hu_scale=(1.0, 1.0), hu_shift=0.0, noise_sd_hu=0.0, smooth_prob=0.0)


def body_case(shape=(48, 48, 48)):
    """A soft-tissue box in air with a 'left' organ (label 1, low i) and a 'right' one (label 2, high i)."""
    hu = np.full(shape, AIR_HU, np.float32)
    hu[4:-4, 6:-6, 6:-6] = 40.0
    labels = np.zeros(shape, np.int64)
    labels[10:-10, 14:-14, 8:20] = 1
    labels[10:-10, 14:-14, 28:40] = 2
    hu[labels == 1] = 60.0
    hu[labels == 2] = 120.0
    return hu, labels


def sampler(settings, patch=32):
    return GeneralisingSampler([body_case()], patch, lambda a: (np.clip(a, -1000, 1000) + 1000) / 1000.0,
                               {1: (-50.0, 50.0), 2: (-50.0, 50.0)}, settings)


def test_still_sampler_returns_an_aligned_crop_of_the_case():
    s = sampler(STILL)
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(6):
        x, y = s.sample(rng)
        assert x.shape == (1, 32, 32, 32) and x.dtype == np.float32 and y.shape == (32, 32, 32)
        assert y.dtype == np.int64
        # without augmentation the image is the case's HU (normalised) exactly where the labels say
        for value, hu in ((1, 60.0), (2, 120.0)):
            if (y == value).any():
                seen.add(value)
                assert np.allclose(x[0][y == value], (hu + 1000) / 1000, atol=1e-5)
    assert seen == {1, 2}


def test_left_and_right_never_swap_under_rotation_scaling_and_mirroring():
    settings = dataclasses.replace(GeneraliseSettings(), slab_prob=0.0, circle_prob=0.0, phase_prob=0.0)
    s = sampler(settings, patch=48)
    rng = np.random.default_rng(1)
    checked = 0
    for _ in range(30):
        _, y = s.sample(rng)
        if (y == 1).sum() > 50 and (y == 2).sum() > 50:
            left_i = np.argwhere(y == 1)[:, 2].mean()
            right_i = np.argwhere(y == 2)[:, 2].mean()
            assert left_i < right_i
            checked += 1
    assert checked >= 10


def test_slabs_keep_few_slices_and_air_beyond_with_no_labels():
    settings = dataclasses.replace(STILL, slab_prob=1.0, slab_slices=(3, 8))
    s = sampler(settings, patch=32)
    air = 0.0  # -1000 HU under the test's normalisation
    rng = np.random.default_rng(2)
    for _ in range(10):
        x, y = s.sample(rng)
        scanned = [k for k in range(32) if not np.allclose(x[0, k], air)]
        assert len(scanned) <= 8
        outside = np.ones(32, bool)
        outside[scanned] = False
        assert not y[outside].any()


def test_contrast_phase_moves_organs_by_their_own_offsets():
    settings = dataclasses.replace(STILL, phase_prob=1.0)
    s = sampler(settings, patch=48)
    rng = np.random.default_rng(3)
    moved = []
    for _ in range(8):
        x, y = s.sample(rng)
        inner = (y == 1)
        if inner.sum() > 100:
            moved.append(float(np.median(x[0][inner])) * 1000 - 1000 - 60.0)
    assert moved and max(abs(m) for m in moved) > 5.0  # the organ's HU was shifted
    assert all(abs(m) <= 50.0 + 1.0 for m in moved)


def test_scanner_noise_and_scale_leave_air_padding_exactly_air():
    settings = dataclasses.replace(GeneraliseSettings(), slab_prob=1.0, circle_prob=0.0)
    s = sampler(settings, patch=32)
    x, _ = s.sample(np.random.default_rng(4))
    assert np.isclose(x.min(), 0.0)  # -1000 HU after the normalisation: padding is air, never noise
    assert np.isfinite(x).all()


def test_pad_with_minimum_pads_short_axes_with_each_channels_minimum_and_crops_back():
    rng = np.random.default_rng(5)
    image = rng.normal(size=(2, 10, 40, 30)).astype(np.float32)
    image[1] += 5.0
    padded, crop = pad_with_minimum(image, (32, 32, 32))
    assert padded.shape == (2, 32, 40, 32)
    assert np.array_equal(padded[(slice(None), *crop)], image)
    assert np.allclose(padded[0, 0], image[0].min()) and np.allclose(padded[1, -1], image[1].min())
    same, whole = pad_with_minimum(image, (8, 8, 8))
    assert same is image and whole == (slice(None),) * 3


@pytest.mark.parametrize("pad", ["zero", "minimum"])
def test_short_volume_probabilities_keep_the_input_shape(pad):
    import torch

    from SegmentationAILib.inference import predict_probabilities
    from SegmentationAILib.seg_model import SegmentationModel, build_network

    card = {"name": "t", "channels": ["CT"], "labels": [{"value": 1, "name": "a"}], "patch_size": [16, 16, 16],
            "architecture": {"name": "UNet", "spatial_dims": 3, "channels": [4, 8], "strides": [2],
                             "num_res_units": 0, "norm": "instance"},
            "inference": {"tta": False, "pad": pad}}
    torch.manual_seed(0)
    model = SegmentationModel(card, build_network(card).eval(), torch.device("cpu"))
    image = np.random.default_rng(6).normal(size=(1, 5, 20, 18)).astype(np.float32)
    probs = predict_probabilities(model, image, tta=False)
    assert probs.shape == (2, 5, 20, 18)
    assert np.allclose(probs.sum(0), 1.0, atol=1e-5)
