"""The limb-surface scenario renders exact depth of a shippable limb CT's body surface from outside."""
from __future__ import annotations

import numpy as np
from conftest import shared_path

from SurgicalDepthLib.synthetic.dataset import SyntheticDepthDataset, default_camera, render_dataset


def test_limb_surface_renders_frames_with_depth(tmp_path):
    ct = shared_path("ct/sts_limb/STS_001_CT_image.nii.gz")
    out = render_dataset([f"limb:{ct}"], tmp_path / "limb", frames=4, paths=1, seed=3,
                         camera=default_camera(128, 160, 80.0), val_every=5)
    data = SyntheticDepthDataset(out)
    assert len(data) == 4
    for i in range(4):
        item = data[i]
        depth = item["depth_mm"][item["valid"]]
        assert item["valid"].mean() > 0.3
        assert 5.0 < np.median(depth) < 200.0  # the skin seen from 25-70 mm
