"""Build a genuine MONAI bundle in a test: model-zoo layout and config keys, a small MONAI UNet
trained for a few steps on synthetic CT-like volumes so that its predictions are confident."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from nnunet_builder import dice_ce, synthetic_case

PIXDIM = [1.5, 1.5, 2.0]  # x, y, z (mm)
ROI = [32, 32, 16]
A_MIN, A_MAX = -100.0, 400.0

NETWORK_DEF = {"_target_": "UNet", "spatial_dims": 3, "in_channels": 1, "out_channels": "@num_classes",
               "channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 1, "norm": "instance"}


def inference_config() -> dict:
    return {
        "imports": ["$import torch"],
        "bundle_root": ".",
        "device": "$torch.device('cpu')",
        "num_classes": 3,
        "network_def": NETWORK_DEF,
        "network": "$@network_def.to(@device)",
        "preprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "LoadImaged", "keys": "image"},
            {"_target_": "EnsureChannelFirstd", "keys": "image"},
            {"_target_": "Orientationd", "keys": "image", "axcodes": "RAS"},
            {"_target_": "Spacingd", "keys": "image", "pixdim": PIXDIM, "mode": "bilinear"},
            {"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": A_MIN, "a_max": A_MAX,
             "b_min": 0.0, "b_max": 1.0, "clip": True},
            {"_target_": "EnsureTyped", "keys": "image"}]},
        "inferer": {"_target_": "SlidingWindowInferer", "roi_size": ROI, "sw_batch_size": 1, "overlap": 0.5},
        "postprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "Activationsd", "keys": "pred", "softmax": True},
            {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
            {"_target_": "Invertd", "keys": "pred", "transform": "@preprocessing", "orig_keys": "image",
             "nearest_interp": True, "to_tensor": True}]},
    }


def metadata() -> dict:
    return {
        "schema": "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20220324.json",
        "version": "0.1.0", "name": "Synthetic abdomen test bundle", "monai_version": "1.6.1",
        "network_data_format": {
            "inputs": {"image": {"type": "image", "format": "hounsfield", "modality": "CT", "num_channels": 1,
                                 "spatial_shape": ROI, "dtype": "float32", "value_range": [0, 1],
                                 "is_patch_data": True, "channel_def": {"0": "image"}}},
            "outputs": {"pred": {"type": "image", "format": "segmentation", "num_channels": 3,
                                 "spatial_shape": ROI, "dtype": "float32", "value_range": [0, 1, 2],
                                 "is_patch_data": True,
                                 "channel_def": {"0": "background", "1": "liver", "2": "kidney_left"}}}},
    }


def _train(steps: int) -> torch.nn.Module:
    from monai.bundle import ConfigParser

    torch.manual_seed(0)
    network = ConfigParser({"num_classes": 3, "network_def": NETWORK_DEF}).get_parsed_content("network_def")
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-2)
    rng = np.random.default_rng(1)
    cases = []
    for _ in range(3):  # volumes already at PIXDIM, as arrays [x, y, z] scaled as ScaleIntensityRanged does
        img, seg = synthetic_case(rng, (24, 40, 40), PIXDIM)
        x = np.clip((sitk.GetArrayFromImage(img) - A_MIN) / (A_MAX - A_MIN), 0, 1).transpose(2, 1, 0)
        cases.append((x.astype(np.float32), sitk.GetArrayFromImage(seg).transpose(2, 1, 0)))
    for _ in range(steps):
        x, y = cases[rng.integers(len(cases))]
        start = [rng.integers(0, s - r + 1) for s, r in zip(x.shape, ROI, strict=True)]
        window = tuple(slice(a, a + r) for a, r in zip(start, ROI, strict=True))
        xb = torch.from_numpy(np.ascontiguousarray(x[window]))[None, None]
        yb = torch.from_numpy(np.ascontiguousarray(y[window])).long()[None]
        loss = dice_ce(network(xb), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return network.eval()


def build_bundle(root: Path, steps: int = 40) -> Path:
    bundle = root / "synthetic_bundle"
    (bundle / "configs").mkdir(parents=True)
    (bundle / "models").mkdir()
    (bundle / "configs" / "inference.json").write_text(json.dumps(inference_config(), indent=2))
    (bundle / "configs" / "metadata.json").write_text(json.dumps(metadata(), indent=2))
    torch.save(_train(steps).state_dict(), str(bundle / "models" / "model.pt"))
    return bundle


def monai_bundle_prediction(bundle: Path, image_path: Path) -> np.ndarray:
    """The label map [x, y, z] that the bundle's own components (parsed by monai.bundle) give."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_meta(str(bundle / "configs" / "metadata.json"))
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser["bundle_root"] = str(bundle)
    network = parser.get_parsed_content("network")
    network.load_state_dict(torch.load(str(bundle / "models" / "model.pt"), weights_only=True))
    network.eval()
    data = parser.get_parsed_content("preprocessing")({"image": str(image_path)})
    with torch.no_grad():
        data["pred"] = parser.get_parsed_content("inferer")(data["image"][None], network)[0]
    data = parser.get_parsed_content("postprocessing")(data)
    return np.asarray(data["pred"][0]).astype(np.uint8)
