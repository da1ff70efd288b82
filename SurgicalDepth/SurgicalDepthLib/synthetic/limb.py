"""Scenario ``limb:CT`` — the surface of a limb CT seen from outside, as in open or arthroscopic-port views.

The limb CTs in ``../shared/data/ct/sts_limb`` may be shipped (CC BY 3.0), so their renders may train
shipped weights. The air-cavity scenario (``ct:``) finds no enclosed air in a limb; here the camera
stands off the body surface (the largest tissue component above -400 HU, which drops the table) and
looks back at it. The CT is cropped around a tumour, so the surface is closed by flat caps at the crop
faces; views of them are rare (short CT, wide limb) and still carry exact depth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from SurgicalDepthLib.synthetic.scenarios import (
    CameraStrategy,
    Scenario,
    Structure,
    VolumeSampler,
    _largest_component,
    _read_ct,
    surface_from_labels,
)
from SurgicalDepthLib.synthetic.textures import TissueLook


SKIN = TissueLook(base_rgb=(0.85, 0.60, 0.50), mottle_rgb=(0.70, 0.45, 0.38), vessel_amount=0.2, specular=0.4)


def limb_surface_scenario(ct_path: str | Path, threshold_hu: float = -400.0) -> Scenario:
    ct, m = _read_ct(Path(ct_path))
    body = _largest_component(ct > threshold_hu).astype(np.uint8)
    surface = surface_from_labels(body, m, 1)
    sampler = VolumeSampler(body, m)
    strategy = CameraStrategy(
        distance_mm=(25.0, 70.0), look_jitter_deg=15.0, min_median_depth_mm=15.0, step_mm=6.0, min_valid_fraction=0.4
    )
    return Scenario(
        f"limb:{Path(ct_path).name}",
        [Structure("skin", surface, SKIN)],
        strategy,
        lambda p: sampler(p, 0) > 0,
        f"Body surface of the limb CT {Path(ct_path).name}.",
    )
