"""Depth losses and metrics on hand-made examples."""
import math

import numpy as np
import pytest
import torch

from SurgicalAICore.errors import InputError
from SurgicalDepthLib.depth.losses import depth_loss, gradient_matching_loss, silog_loss
from SurgicalDepthLib.depth.metrics import depth_metrics, summarise


def maps():
    torch.manual_seed(0)
    gt = torch.rand(2, 1, 32, 40) * 80 + 5
    valid = torch.rand(2, 1, 32, 40) > 0.2
    return gt, valid


def test_losses_are_zero_for_a_perfect_prediction():
    gt, valid = maps()
    assert silog_loss(gt, gt, valid).item() == pytest.approx(0.0, abs=1e-7)
    assert gradient_matching_loss(gt, gt, valid).item() == pytest.approx(0.0, abs=1e-7)
    assert depth_loss(gt, gt, valid).item() == pytest.approx(0.0, abs=1e-7)


def test_silog_is_scale_invariant_only_with_lambda_one():
    gt, valid = maps()
    scaled = gt * 3.0
    assert silog_loss(scaled, gt, valid, lam=1.0).item() == pytest.approx(0.0, abs=1e-6)
    assert gradient_matching_loss(scaled, gt, valid).item() == pytest.approx(0.0, abs=1e-6)
    # with lambda < 1 a wrong scale costs (1 - lambda) * log(3)^2
    assert silog_loss(scaled, gt, valid, lam=0.5).item() == pytest.approx(0.5 * math.log(3.0) ** 2, rel=1e-4)


def test_losses_grow_with_error_and_ignore_invalid_pixels():
    gt, valid = maps()
    noisy = gt * torch.exp(0.1 * torch.randn_like(gt))
    worse = gt * torch.exp(0.3 * torch.randn_like(gt))
    assert 0 < silog_loss(noisy, gt, valid).item() < silog_loss(worse, gt, valid).item()
    assert 0 < gradient_matching_loss(noisy, gt, valid).item() < gradient_matching_loss(worse, gt, valid).item()
    garbage = torch.where(valid, gt, torch.full_like(gt, 1e4))
    assert depth_loss(garbage, gt, valid).item() == pytest.approx(0.0, abs=1e-6)
    none = torch.zeros_like(valid)
    assert depth_loss(noisy, gt, none).item() == 0.0


def test_metrics_on_hand_made_examples():
    gt = np.array([[10.0, 20.0], [40.0, 0.0]])
    pred = np.array([[11.0, 20.0], [30.0, 99.0]])  # the last pixel has no ground truth
    m = depth_metrics(pred, gt)
    assert m["pixels"] == 3
    assert m["abs_rel"] == pytest.approx((0.1 + 0.0 + 0.25) / 3)
    assert m["sq_rel"] == pytest.approx((1 / 10 + 0 + 100 / 40) / 3)
    assert m["rmse_mm"] == pytest.approx(math.sqrt((1 + 0 + 100) / 3))
    assert m["rmse_log"] == pytest.approx(math.sqrt((math.log(1.1) ** 2 + math.log(0.75) ** 2) / 3))
    assert m["delta1"] == pytest.approx(2 / 3)  # 40/30 = 1.33 fails 1.25
    assert m["delta2"] == pytest.approx(1.0)
    # median scaling removes a global factor entirely
    s = depth_metrics(gt * 0.5, gt, median_scaled=True)
    assert s["abs_rel"] == pytest.approx(0.0) and s["delta1"] == 1.0 and s["scale"] == pytest.approx(2.0)
    assert depth_metrics(gt * 0.5, gt)["abs_rel"] == pytest.approx(0.5)


def test_depth_cap_and_errors():
    gt = np.array([10.0, 500.0])
    pred = np.array([10.0, 100.0])
    assert depth_metrics(pred, gt, cap_mm=300)["abs_rel"] == 0.0  # 500 mm is beyond the cap
    assert depth_metrics(pred, gt, cap_mm=1000)["abs_rel"] == pytest.approx(0.4)
    with pytest.raises(InputError, match="No valid"):
        depth_metrics(pred, np.zeros(2))
    with pytest.raises(InputError, match="differ"):
        depth_metrics(pred, np.zeros(3))
    rows = [depth_metrics(pred, gt, cap_mm=1000), depth_metrics(pred, gt, cap_mm=300)]
    assert summarise(rows)["abs_rel"] == pytest.approx(0.2)
