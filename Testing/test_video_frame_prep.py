"""Frame preparation: field-stop / black-border mask and specular highlights."""
from __future__ import annotations

import numpy as np

from SurgicalDepthLib.video.prep import field_stop_mask, mask_bbox, specular_mask


def test_circular_field_stop_found_with_dark_tissue_inside():
    h, w = 120, 160
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.full((h, w, 3), 120, np.uint8)
    inside = (xx - 80) ** 2 + (yy - 60) ** 2 <= 55 ** 2
    rgb[~inside] = 0
    rgb[50:70, 70:90] = 5          # a dark cavity inside the field of view stays in the mask
    rng = np.random.default_rng(0)
    specks = rng.random((h, w)) < 0.002
    rgb[specks & ~inside] = 90     # compression specks in the border are not field of view
    mask = field_stop_mask(rgb)
    assert mask[60, 80] and mask[55, 75]
    assert not mask[0, 0] and not mask[5, 150]
    assert not (mask & ~inside).any()            # never outside the field stop
    assert mask.sum() > 0.93 * inside.sum()      # only a rim of one or two pixels is given up
    x0, y0, bw, _bh = mask_bbox(mask)
    assert abs(x0 - 25) <= 3 and abs(bw - 111) <= 6 and abs(y0 - 5) <= 3


def test_black_border_and_full_frames():
    rgb = np.full((60, 80, 3), 100, np.uint8)
    assert field_stop_mask(rgb).all()
    rgb[:, :10] = 0
    rgb[:, 70:] = 0
    mask = field_stop_mask(rgb)
    assert not mask[:, :10].any() and not mask[:, 70:].any() and mask[1:-1, 12:68].all()
    assert field_stop_mask(np.zeros((60, 80, 3), np.uint8)).all()  # nothing found: keep everything


def test_specular_highlights_masked_but_coloured_bright_tissue_kept():
    rgb = np.zeros((60, 80, 3), np.uint8)
    rgb[...] = (180, 90, 80)
    rgb[20:24, 30:34] = 255        # a white highlight
    rgb[40:50, 10:20] = (255, 200, 40)  # saturated but coloured: tissue
    spec = specular_mask(rgb, grow_px=1)
    assert spec[21, 31] and spec[19, 31] and spec[22, 34]          # the spot and its grown rim
    assert not spec[45, 15] and not spec[5, 5]
    assert 16 < spec.sum() <= 36
