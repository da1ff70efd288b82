"""Short slabs of the bundled sample CT, re-sliced like a DICOM series, and the default model's Dice on them.

A user's abdominal scan is often a partial one: 20 slices at 2 mm, stored LPS. The sample CT cut that way
tests field of view, slice spacing and orientation with data that may ship (same patient, so not anatomy).
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from SegmentationAILib.sample_reference import default_labels, sample_reference_labels
from SurgicalAICore.resources import sample_ct_path

SLAB_ORGANS = ("liver", "spleen", "stomach", "aorta")


def sample_slabs(slices: int = 20, spacing=(0.98, 0.98, 2.0), count: int = 4):
    """Yield ``(name, slab CT, slab reference labels)`` at ``count`` heights spread over the liver."""
    ct = sitk.DICOMOrient(sitk.ReadImage(str(sample_ct_path())), "LPS")
    reference = sitk.DICOMOrient(sample_reference_labels(), "LPS")
    size = [round(n * s / t) for n, s, t in zip(ct.GetSize(), ct.GetSpacing(), spacing, strict=True)]
    fine = sitk.Resample(ct, size, sitk.Transform(), sitk.sitkLinear, ct.GetOrigin(), spacing,
                         ct.GetDirection(), -1024.0, sitk.sitkInt16)
    fine_ref = sitk.Resample(reference, fine, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    liver_value = {e["name"]: e["value"] for e in default_labels()}["liver"]
    liver = np.argwhere(sitk.GetArrayViewFromImage(fine_ref) == liver_value)[:, 0]
    first, last = int(liver.min()), int(liver.max())
    for start in np.linspace(first, max(first, last - slices), count).astype(int):
        start = int(start)
        yield (f"slices {start}-{start + slices - 1}", fine[:, :, start:start + slices],
               fine_ref[:, :, start:start + slices])


def slab_dice(model, slices: int = 20, spacing=(0.98, 0.98, 2.0)) -> dict:
    """Dice of ``SLAB_ORGANS`` present in each slab, and their mean over slabs (``"mean"``)."""
    from SegmentationAILib.segmenter import segment_image
    from SegmentationAILib.statistics import dice_scores

    labels = {e["name"]: e["value"] for e in default_labels()}
    values = [labels[n] for n in SLAB_ORGANS]
    out = {}
    for name, slab, slab_ref in sample_slabs(slices, spacing):
        result = segment_image(slab, model, {"device": "cpu"})
        reference = sitk.GetArrayFromImage(slab_ref)
        dice = dice_scores(sitk.GetArrayFromImage(result), reference, values)
        out[name] = {n: round(float(dice[labels[n]]), 4) for n in SLAB_ORGANS if (reference == labels[n]).any()}
    out["mean"] = round(float(np.mean([np.mean(list(d.values())) for d in out.values() if d])), 4)
    return out
