"""Depth augmentation: geometry stays exact, each transform does what it claims, seeded and composable."""
from __future__ import annotations

import numpy as np
import pytest

from SurgicalDepthLib.depth import augment as A


def sample(h=64, w=80):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    depth = 10.0 + 0.5 * xx + 0.25 * yy
    image = np.stack([0.6 * (10.0 / depth) ** 2] * 3, axis=-1).astype(np.float32)
    return {"image": image, "depth": depth, "valid": np.ones((h, w), bool)}


def test_augment_sample_keeps_depth_values_and_range():
    s = sample()
    rgb = (s["image"] * 255).astype(np.uint8)
    for seed in range(20):
        img, d, v = A.augment_sample(rgb, s["depth"], s["valid"], np.random.default_rng(seed), (32, 48), 1.0)
        assert img.shape == (32, 48, 3) and d.shape == v.shape == (32, 48)
        assert img.dtype == np.float32 and img.min() >= 0 and img.max() <= 1
        # crop, flips and the nearest-neighbour intrinsics change only pick existing depth values
        assert np.isin(np.round(d[v], 4), np.round(s["depth"], 4)).all()


def test_same_seed_same_sample():
    s = sample()
    rgb = (s["image"] * 255).astype(np.uint8)
    a = A.augment_sample(rgb, s["depth"], s["valid"], np.random.default_rng(3), (64, 80), 0.8)
    b = A.augment_sample(rgb, s["depth"], s["valid"], np.random.default_rng(3), (64, 80), 0.8)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_strength_zero_is_crop_only():
    s = sample()
    rgb = (s["image"] * 255).astype(np.uint8)
    img, d, _ = A.augment_sample(rgb, s["depth"], s["valid"], np.random.default_rng(0), (64, 80), 0.0)
    assert np.array_equal(img, rgb.astype(np.float32) / 255) and np.array_equal(d, s["depth"])


def forced(t):
    t.prob = 1.0
    t.randomize(np.random.default_rng(1))
    return t


def test_field_stop_masks_the_loss_and_darkens_the_border():
    out = forced(A.RandFieldStop())(sample())
    assert not out["valid"][0, 0] and out["image"][0, 0].max() == 0
    assert 0.3 < out["valid"].mean() < 1.0
    assert np.all(out["image"][~out["valid"]] <= 0.5 * sample()["image"][~out["valid"]] + 1e-6)


def test_depth_falloff_darkens_far_relative_to_near():
    s = sample()
    out = forced(A.RandDepthFalloff())(s)
    near, far = np.unravel_index(s["depth"].argmin(), s["depth"].shape), np.unravel_index(s["depth"].argmax(),
                                                                                         s["depth"].shape)
    assert out["image"][far][0] / out["image"][near][0] < s["image"][far][0] / s["image"][near][0]


def test_intrinsics_change_stretches_a_window_and_keeps_depth_exact():
    s = sample()
    t = forced(A.RandIntrinsics())
    out = t(s)
    assert out["depth"].shape == s["depth"].shape
    assert np.isin(out["depth"], s["depth"]).all()
    # a sub-window stretched: fewer distinct depth columns than the original
    assert len(np.unique(out["depth"][0])) < len(np.unique(s["depth"][0]))


@pytest.mark.parametrize("cls", [A.RandTissueTint, A.RandExposure, A.RandSpecular, A.RandBlood, A.RandSmoke,
                                 A.RandVignetting, A.RandChromaticAberration, A.RandBlur, A.RandMotionBlur,
                                 A.RandSensorNoise, A.RandJpeg])
def test_appearance_transforms_change_image_only(cls):
    s = sample()
    out = forced(cls())(s)
    assert out["image"].shape == s["image"].shape and not np.allclose(out["image"], s["image"])
    assert out["depth"] is s["depth"] and out["valid"] is s["valid"]


def test_probability_zero_never_applies():
    t = A.RandJpeg(prob=0.0)
    s = sample()
    for seed in range(10):
        t.randomize(np.random.default_rng(seed))
        assert t(s) is s
