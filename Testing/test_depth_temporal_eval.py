"""Temporal consistency: a scene sliding across the image is consistent along the flow, not per pixel."""
from __future__ import annotations

import numpy as np
import pytest

from SurgicalAICore.errors import InputError
from SurgicalDepthLib.depth.temporal_eval import pair_consistency, sequence_consistency


def textured(h=96, w=128, shift=0):
    rng = np.random.default_rng(0)
    big = rng.random((h // 4, (w + 64) // 4)).astype(np.float32)
    import cv2

    big = cv2.resize(big, (w + 64, h), interpolation=cv2.INTER_CUBIC)
    xx = np.arange(w + 64, dtype=np.float32)
    depth_big = 20.0 + 10.0 * np.sin(xx / 15.0)[None].repeat(h, 0) + 0.0 * big
    img = (np.clip(big, 0, 1) * 200 + 30).astype(np.uint8)
    rgb = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(rgb[:, shift:shift + w]), np.ascontiguousarray(depth_big[:, shift:shift + w])


def test_moving_scene_is_consistent_along_flow():
    (fa, da), (fb, db) = textured(shift=0), textured(shift=3)
    mask = np.ones(da.shape, bool)
    row = pair_consistency(fa, fb, da, db, mask)
    assert row["warped"] < 0.5 * row["flicker"]  # what is left is the window's median changing
    assert row["tracked_fraction"] > 0.5


def test_global_scale_change_is_not_flicker():
    fa, da = textured()
    row = pair_consistency(fa, fa, da, 2.5 * da, np.ones(da.shape, bool))
    assert row["flicker"] < 1e-6 and row["warped"] < 1e-3


def test_flickering_depth_is_seen():
    fa, da = textured()
    noisy = da * np.random.default_rng(1).uniform(0.8, 1.2, da.shape).astype(np.float32)
    row = pair_consistency(fa, fa, da, noisy, np.ones(da.shape, bool))
    assert row["flicker"] > 0.05 and row["warped"] > 0.05


def test_bad_sequences():
    fa, da = textured()
    fb, db = textured(h=64)
    with pytest.raises(InputError):
        sequence_consistency([fa], [da])
    with pytest.raises(InputError, match="one size"):
        sequence_consistency([fa, fb], [da, db])
