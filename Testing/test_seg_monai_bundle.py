"""MONAI bundles: parity with the bundle's own components parsed by monai.bundle, labels from the
metadata, integrity/safety, and bundles this extension must refuse."""
import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from monai_bundle_builder import PIXDIM, build_bundle, monai_bundle_prediction
from nnunet_builder import synthetic_case
from SurgicalAICore.errors import ModelError
from SegmentationAILib.formats.checksums import RECORD_NAME
from SegmentationAILib.seg_model import load_segmentation_model
from SegmentationAILib.segmenter import segment_image


@pytest.fixture(scope="session")
def bundle(tmp_path_factory):
    return build_bundle(tmp_path_factory.mktemp("bundle"))


def _copy(bundle, tmp_path):
    out = tmp_path / bundle.name
    shutil.copytree(bundle, out)
    (out / RECORD_NAME).unlink(missing_ok=True)
    return out


def _dice(a, b):
    return 2.0 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1)


@pytest.mark.parametrize("spacing", [PIXDIM, [1.2, 1.7, 2.5]], ids=["bundle-spacing", "resampled"])
def test_parity_with_monai_bundle(bundle, tmp_path, spacing):
    image, truth = synthetic_case(np.random.default_rng(7), (30, 46, 44), spacing)
    path = tmp_path / "case.nii.gz"
    sitk.WriteImage(image, str(path))
    reference = monai_bundle_prediction(bundle, path).transpose(2, 1, 0)  # MONAI [x, y, z] -> [k, j, i]
    ours = sitk.GetArrayFromImage(segment_image(sitk.ReadImage(str(path)), bundle, {"device": "cpu"}))
    truth = sitk.GetArrayFromImage(truth)
    for value in (1, 2):
        assert _dice(reference == value, truth == value) > 0.3  # the network learned something: not empty maps
        # same grid: the same label map; resampled: MONAI's Spacingd and SimpleITK place the new grid alike
        # but interpolate differently, which moves a few boundary voxels of these small structures
        assert _dice(ours == value, reference == value) >= (0.99 if spacing == PIXDIM else 0.93), value


def test_card_from_bundle(bundle):
    model = load_segmentation_model(bundle, device="cpu")
    assert [(e["value"], e["name"]) for e in model.labels] == [(1, "liver"), (2, "kidney_left")]
    assert model.labels[0]["color"] == pytest.approx([221 / 255, 130 / 255, 101 / 255], abs=1e-3)
    assert model.card["spacing"] == PIXDIM and model.card["orientation"] == "RAS"
    assert model.card["normalization"][0]["type"] == "ct" and model.card["inference"]["tta"] is False
    assert (bundle / RECORD_NAME).is_file()


def test_torchscript_bundle_gives_the_same_network(bundle, tmp_path):
    folder = _copy(bundle, tmp_path)
    state = load_segmentation_model(bundle, device="cpu")
    inner = state.network.networks[0]
    torch.jit.save(torch.jit.script(inner), str(folder / "models" / "model.ts"))
    (folder / "models" / "model.pt").unlink()
    scripted = load_segmentation_model(folder, device="cpu")
    x = torch.randn(1, 1, 16, 32, 32)
    with torch.no_grad():
        assert torch.allclose(scripted.network(x), state.network(x), atol=1e-5)


def _edit(folder, name, change):
    path = folder / "configs" / name
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    (folder / RECORD_NAME).unlink(missing_ok=True)


def test_bad_bundles_are_refused_with_one_line(bundle, tmp_path):
    code = _copy(bundle, tmp_path / "code")
    _edit(code, "inference.json", lambda c: c["network_def"].update(channels="$__import__('os').getcwd()"))
    with pytest.raises(ModelError, match="Python code"):
        load_segmentation_model(code, device="cpu")
    unknown = _copy(bundle, tmp_path / "unknown")
    _edit(unknown, "inference.json", lambda c: c["network_def"].update(_target_="my_package.MyNet"))
    with pytest.raises(ModelError, match=r"unknown component 'my_package\.MyNet'"):
        load_segmentation_model(unknown, device="cpu")
    transform = _copy(bundle, tmp_path / "transform")
    _edit(transform, "inference.json", lambda c: c["preprocessing"]["transforms"].append(
        {"_target_": "HistogramNormalized", "keys": "image"}))
    with pytest.raises(ModelError, match="'HistogramNormalized'"):
        load_segmentation_model(transform, device="cpu")
    labels = _copy(bundle, tmp_path / "labels")
    _edit(labels, "metadata.json", lambda m: m["network_data_format"]["outputs"]["pred"]["channel_def"].update(
        {"3": "spleen"}))
    with pytest.raises(ModelError, match="gives 3 output channels but 3 labels"):
        load_segmentation_model(labels, device="cpu")
    missing = _copy(bundle, tmp_path / "missing")
    (missing / "models" / "model.pt").unlink()
    with pytest.raises(ModelError, match=r"no models/model\.pt"):
        load_segmentation_model(missing, device="cpu")
