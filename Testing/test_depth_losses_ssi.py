"""The scale-and-shift-invariant loss ignores exactly what the real-video evaluation aligns away."""
from __future__ import annotations

import torch

from SurgicalDepthLib.depth.losses import scale_shift_invariant_loss


def gt_depth():
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(40.0), indexing="ij")
    return (20.0 + 0.5 * xx + 0.3 * yy + 4 * torch.sin(xx / 5))[None, None].repeat(2, 1, 1, 1)


def test_zero_for_any_scale_and_shift_of_inverse_depth():
    gt = gt_depth()
    valid = torch.ones_like(gt, dtype=torch.bool)
    pred = 1.0 / (0.3 / gt + 0.01)  # inverse depth scaled by 0.3 and shifted by 0.01
    assert scale_shift_invariant_loss(pred, gt, valid) < 1e-4


def test_positive_for_wrong_structure_and_invalid_pixels_ignored():
    gt = gt_depth()
    valid = torch.ones_like(gt, dtype=torch.bool)
    wrong = gt.flip(-1)
    assert scale_shift_invariant_loss(wrong, gt, valid) > 0.05
    garbage = gt.clone()
    garbage[..., :, :10] = 1000.0
    valid[..., :, :10] = False
    assert scale_shift_invariant_loss(garbage, gt, valid) < 1e-4


def test_gradient_flows():
    gt = gt_depth()
    pred = (gt * 1.3).flip(-2).requires_grad_()
    loss = scale_shift_invariant_loss(pred, gt, torch.ones_like(gt, dtype=torch.bool))
    loss.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_training_with_the_ssi_loss_runs_and_records_it(tmp_path):
    import json

    from test_depth_training import CAM, config, slanted_frame  # the tiny dataset helpers

    from SurgicalDepthLib.depth.training import train_depth_model
    from SurgicalDepthLib.synthetic.dataset import DatasetWriter

    root = tmp_path / "ds"
    with DatasetWriter(root, CAM) as w:
        for i in range(8):
            if i % 4 == 0:
                w.begin_path(f"p{i // 4}", "planes", i, "val" if i >= 4 else "train")
            w.add(slanted_frame(i))
    out = train_depth_model([str(root)], str(tmp_path / "m"), config(steps=6, ssi_weight=0.5, val_every=6))
    assert json.loads((out / "model.json").read_text())["training"]["ssi_weight"] == 0.5
