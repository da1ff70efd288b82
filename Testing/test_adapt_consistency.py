"""Dense depth consistency (Liu et al. TMI 2020), distillation to the source model and decoder-only adaptation,
on a rendered clip with exact depth and poses."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from adapt_helpers import relative_motion, synthetic_clip
from small_depth_model import small_bundled_model

from SurgicalAICore.errors import InputError
from SurgicalDepthLib.depth import adapt_losses as L
from SurgicalDepthLib.depth.adapt import AdaptConfig, adapt_depth_model, resolved
from SurgicalDepthLib.depth.adapt_motion import MotionConfig
from SurgicalDepthLib.video.sources import ArraySource
from surgicalai.cli import main


def tensor(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float32))


def pair(i: int = 3, j: int = 6):
    """Depths (1, 1, H, W), masks, K and the exact motion X_j = R X_i + t (mm) of two rendered frames."""
    _, depths, poses, camera = synthetic_clip()
    d_i, d_j = (tensor(depths[k])[None, None] for k in (i, j))
    R, t = relative_motion(poses[i], poses[j])
    return d_i, d_j, (d_i > 0).float(), (d_j > 0).float(), tensor(camera.K), tensor(R)[None], tensor(t)[None]


def rotation_about_y(deg: float) -> torch.Tensor:
    a = np.radians(deg)
    return tensor([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


def test_consistency_is_zero_for_true_depth_and_motion_and_grows_with_a_wrong_scale_or_rotation():
    d_i, d_j, m_i, m_j, K, R, t = pair()
    assert float(t.norm()) > 1.0  # the frames are apart: a wrong translation scale must show
    exact = float(L.depth_consistency_loss(d_i, d_j, K, R, t, m_i, m_j))
    assert exact < 0.005
    scale = float(L.depth_consistency_loss(d_i, d_j, K, R, 2.0 * t, m_i, m_j))
    turned = float(L.depth_consistency_loss(d_i, d_j, K, rotation_about_y(3.0) @ R, t, m_i, m_j))
    flat = float(L.depth_consistency_loss(torch.full_like(d_i, float(d_i.median())), d_j, K, R, t, m_i, m_j))
    assert scale > 3 * exact and scale > 0.005
    assert turned > 3 * exact and turned > 0.005
    assert flat > 5 * exact
    # scale-free: depths and translation scaled together agree as well as before
    assert float(L.depth_consistency_loss(7 * d_i, 7 * d_j, K, R, 7 * t, m_i, m_j)) == pytest.approx(exact, abs=1e-5)


def test_consistency_gradient_moves_a_wrong_depth_towards_the_true_one():
    d_i, d_j, m_i, m_j, K, R, t = pair()
    wrong = (d_i * 1.3).requires_grad_(True)
    L.depth_consistency_loss(wrong, d_j, K, R, t, m_i, m_j).backward()
    # the loss wants the too-far depth nearer: a positive gradient on most valid pixels
    g = wrong.grad[(m_i > 0) & (wrong.grad != 0)]
    assert g.numel() > 0.3 * float(m_i.sum())
    assert float((g > 0).float().mean()) > 0.8


def test_distillation_ignores_scale_and_shift_of_the_disparity_but_not_its_shape():
    _, depths, _, _ = synthetic_clip()
    d = tensor(depths[2])[None, None]
    mask = (d > 0).float()
    same_shape = 1.0 / (0.4 / d + 0.01)
    assert float(L.distillation_loss(same_shape, d, mask)) < 1e-4
    other = tensor(depths[9])[None, None]
    assert float(L.distillation_loss(other, d, mask)) > 0.1


@pytest.fixture(scope="module")
def small_model(tmp_path_factory) -> Path:
    return small_bundled_model(tmp_path_factory.mktemp("model") / "small")


def test_decoder_only_adaptation_with_consistency_and_distillation_keeps_the_encoder(tmp_path, small_model):
    from SurgicalDepthLib.depth.adapt import _source_network

    frames, _, _, camera = synthetic_clip()
    cfg = AdaptConfig(minutes=5.0, max_steps=4, batch_size=4, lr=3e-4, threads=1, holdout_fraction=0.3,
                      motion=MotionConfig(max_gap=2), motion_source="pairs", consistency_weight=0.5, distill_weight=0.5,
                      train_layers="decoder")
    out = tmp_path / "adapted"
    result = adapt_depth_model(ArraySource(frames), out, camera=camera, model=small_model, config=cfg)
    assert "dense depth consistency" in result.card["training"]["method"]
    assert result.card["training"]["settings"]["train_layers"] == "decoder"
    before = _source_network(small_model)[0].state_dict()
    after = _source_network(out)[0].state_dict()
    encoder = [k for k in before if k.startswith("stages.")]
    decoder = [k for k in before if k.startswith(("up.", "head.")) and before[k].is_floating_point()]
    # weights and batch statistics of the encoder untouched; the decoder learnt
    assert all(torch.equal(before[k], after[k]) for k in encoder)
    assert any(not torch.equal(before[k], after[k]) for k in decoder)


@pytest.mark.parametrize(("option", "message"), [
    ({"consistency_weight": -1.0}, "Consistency weight -1.0 must be zero or positive."),
    ({"distill_weight": float("nan")}, "Distill weight nan must be zero or positive."),
    ({"train_layers": "encoder"}, "Unknown trainable layers 'encoder': use all or decoder."),
    ({"consistency_weight": 1.0, "batch_size": 1}, "Depth consistency needs a batch of at least 2 frames"),
])
def test_bad_loss_options_are_refused_with_one_line_and_nothing_written(tmp_path, small_model, option, message):
    frames, _, _, camera = synthetic_clip()
    out = tmp_path / "adapted"
    with pytest.raises(InputError) as info:
        adapt_depth_model(ArraySource(frames), out, camera=camera, model=small_model,
                          config=AdaptConfig(**{"minutes": 1.0, **option}))
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
    assert not out.exists()


def test_cli_exposes_the_options_and_refuses_a_negative_weight(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["adapt-depth", "--help"])
    text = capsys.readouterr().out
    for flag in ("--consistency-weight", "--distill-weight", "--train-layers", "--sparse-weight"):
        assert flag in text
    frames, _, _, camera = synthetic_clip()
    folder = tmp_path / "clip"
    folder.mkdir()
    import cv2

    for k, f in enumerate(frames):
        cv2.imwrite(str(folder / f"{k:04d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    camera.save_json(tmp_path / "camera.json")
    code = main(["adapt-depth", str(folder), "-o", str(tmp_path / "out"), "--camera", str(tmp_path / "camera.json"),
                 "--distill-weight", "-0.5"])
    assert code == 2
    lines = [ln for ln in capsys.readouterr().err.strip().splitlines() if "weight" in ln]
    assert lines == ["error: Distill weight -0.5 must be zero or positive."] or len(lines) == 1
    assert not (tmp_path / "out").exists()


def test_cli_help_defaults_are_the_library_defaults():
    from surgicalai.commands import adapt_depth as cmd

    d = AdaptConfig()
    assert (cmd.DISTILL_DEFAULT, cmd.TRAIN_LAYERS_DEFAULT) == (d.distill_weight, d.train_layers)
    # the sparse points weigh more beside the depth consistency of the clip's reconstruction
    assert resolved(AdaptConfig(motion_source="pairs")).sparse_weight == cmd.SPARSE_DEFAULT
    assert resolved(AdaptConfig(motion_source="sfm")).sparse_weight == cmd.SPARSE_SFM_DEFAULT > cmd.SPARSE_DEFAULT
    assert resolved(AdaptConfig(motion_source="sfm", sparse_weight=0.1)).sparse_weight == 0.1
    # depth consistency on by default with the clip's reconstruction only
    assert resolved(AdaptConfig(motion_source="sfm")).consistency_weight == cmd.CONSISTENCY_SFM_DEFAULT > 0
    assert resolved(AdaptConfig(motion_source="pairs")).consistency_weight == 0.0
    assert resolved(AdaptConfig(motion_source="sfm", consistency_weight=0.0)).consistency_weight == 0.0


def test_panel_settings_reach_the_adaptation_and_bad_ones_are_refused_before_a_job(scene, tmp_path):
    from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics
    from SurgicalDepthLib.panel.depth_panel import AdaptLayers, AdaptMotion, DepthPanel, SourceType, adapt_config

    panel = DepthPanel(scene)
    d = AdaptConfig()
    values = panel.params.values()
    cfg = resolved(adapt_config(values))  # the panel's defaults are the library's
    assert (cfg.minutes, cfg.motion_source, cfg.consistency_weight, cfg.distill_weight, cfg.train_layers) == (
        d.minutes, d.motion_source, resolved(d).consistency_weight, d.distill_weight, d.train_layers)
    panel.params.update(adaptMotion=AdaptMotion.SFM, adaptTrainLayers=AdaptLayers.DECODER)
    cfg = adapt_config(panel.params.values())
    assert (cfg.motion_source, cfg.train_layers) == ("sfm", "decoder")
    assert cfg.consistency_weight == resolved(AdaptConfig(motion_source="sfm")).consistency_weight
    panel.params.set("adaptConsistencyWeight", 0.7)
    assert adapt_config(panel.params.values()).consistency_weight == 0.7

    frames, _, _, _ = synthetic_clip()
    folder = tmp_path / "clip"
    folder.mkdir()
    import cv2

    for k, f in enumerate(frames):
        cv2.imwrite(str(folder / f"{k:04d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    panel.params.update(sourceType=SourceType.FOLDER, frameFolder=str(folder), outputFolder=str(tmp_path / "out"),
                        adaptDistillWeight=-1.0)
    panel.session.camera = CameraIntrinsics.from_fov(160, 128, 70.0)
    with pytest.raises(InputError, match=r"^Distill weight -1\.0 must be zero or positive\.$"):
        panel.adapt()
    assert not panel.job.running and not (tmp_path / "out").exists()
