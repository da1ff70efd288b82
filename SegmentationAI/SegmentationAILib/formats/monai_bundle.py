"""MONAI bundles as segmentation models: network from the bundle config, preprocessing translated.

A bundle holds ``configs/metadata.json`` (labels: ``network_data_format.outputs.pred.channel_def``),
``configs/inference.json`` (``network_def``, ``preprocessing``, ``inferer``) and
``models/model.pt`` (state dict) or ``models/model.ts`` (TorchScript). The network is instantiated by
``monai.bundle.ConfigParser`` after a check that the config names only MONAI networks and plain
values (no ``$`` Python expressions), since a config could otherwise run arbitrary code. The
preprocessing chain is translated into this extension's card (orientation, spacing, intensity
scaling) so the image goes through the shared path; transforms that cannot be translated are
refused by name. MONAI arrays are ``[x, y, z]`` (= i, j, k); the adapter gives the network that order.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from SurgicalAICore.model_folder import read_json_object
from SurgicalAICore.errors import ModelError
from SegmentationAILib.formats.checksums import safe_torch_load, verify_or_record
from SegmentationAILib.formats.wrappers import AxisOrderedNetwork, check_outputs

NETWORKS = ("UNet", "BasicUNet", "SegResNet", "SegResNetDS", "DynUNet", "UNETR", "SwinUNETR", "AttentionUnet",
            "VNet", "FlexibleUNet", "HighResNet")
_IGNORED = {"LoadImage", "LoadImaged", "EnsureChannelFirst", "EnsureChannelFirstd", "EnsureType", "EnsureTyped",
            "ToTensor", "ToTensord", "CastToType", "CastToTyped", "CropForeground", "CropForegroundd",
            "DivisiblePadd", "DivisiblePad"}


def can_load(path: Path) -> bool:
    path = Path(path)
    return (path / "configs" / "metadata.json").is_file() or (path / "configs" / "inference.json").is_file()


def _read_json(path: Path) -> dict[str, Any]:
    return read_json_object(path, f"MONAI bundle {path.parent.parent} has no configs/{path.name}.")


def _short(target: Any) -> str:
    return str(target).rsplit(".", 1)[-1]


def _check_plain(config: dict[str, Any], value: Any, where: str, seen: set[str]) -> None:
    """Refuse Python expressions anywhere the network definition reaches (following @ references)."""
    if isinstance(value, str):
        if value.startswith("$"):
            raise ModelError(f"inference.json {where} is Python code ({value[:40]}); bundles whose network is "
                             "defined by code are not run here.")
        if value.startswith("@"):
            ref = value[1:]
            if ref in seen:
                return
            seen.add(ref)
            node: Any = config
            for part in ref.split("#"):
                node = node.get(part) if isinstance(node, dict) else (
                    node[int(part)] if isinstance(node, list) and part.isdigit() and int(part) < len(node) else None)
                if node is None:
                    raise ModelError(f"inference.json {where} refers to '{ref}', which the config does not define.")
            _check_plain(config, node, ref, seen)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_plain(config, item, f"{where}#{key}", seen)
    elif isinstance(value, list):
        for n, item in enumerate(value):
            _check_plain(config, item, f"{where}#{n}", seen)


def _network(config: dict[str, Any], folder: Path) -> torch.nn.Module:
    from monai.bundle import ConfigParser

    definition = config.get("network_def")
    if not isinstance(definition, dict) or "_target_" not in definition:
        raise ModelError(f"MONAI bundle {folder}: inference.json has no network_def with a _target_.")
    target = str(definition["_target_"])
    if _short(target) not in NETWORKS or not (target == _short(target) or target.startswith("monai.networks.")):
        raise ModelError(f"MONAI bundle {folder}: network_def names unknown component '{target}' "
                         f"(known: {', '.join(NETWORKS)}).")
    _check_plain(config, {k: v for k, v in definition.items() if k != "_target_"}, "network_def", set())
    try:
        return ConfigParser(config).get_parsed_content("network_def")
    except Exception as error:  # the parser wraps every constructor error
        raise ModelError(f"MONAI bundle {folder}: network_def cannot be built "
                         f"({str(error).splitlines()[-1][:200]}).") from None


def _transforms(config: dict[str, Any], folder: Path) -> list[dict[str, Any]]:
    pre = config.get("preprocessing")
    if pre is None:
        return []
    items = pre.get("transforms") if isinstance(pre, dict) and _short(pre.get("_target_")) == "Compose" else None
    if not isinstance(items, list) or not all(isinstance(t, dict) and "_target_" in t for t in items):
        raise ModelError(f"MONAI bundle {folder}: preprocessing is not a Compose of MONAI transforms.")
    _check_plain(config, items, "preprocessing", set())
    return items


def _translate(transforms: list[dict[str, Any]], folder: Path, channels: int) -> dict[str, Any]:
    """Card fields (orientation, spacing, normalization) from a standard MONAI transform chain."""
    card: dict[str, Any] = {"normalization": [{"type": "none"}] * channels}
    for t in transforms:
        name = _short(t["_target_"])
        if name in _IGNORED:
            continue
        if name in ("Orientationd", "Orientation"):
            card["orientation"] = str(t.get("axcodes", "RAS"))
        elif name in ("Spacingd", "Spacing"):
            pixdim = t.get("pixdim")
            pixdim = [pixdim] * 3 if isinstance(pixdim, (int, float)) else pixdim
            if not (isinstance(pixdim, list) and len(pixdim) == 3):
                raise ModelError(f"MONAI bundle {folder}: Spacingd pixdim {pixdim!r} must be three numbers.")
            card["spacing"] = [float(p) for p in pixdim]
        elif name in ("ScaleIntensityRanged", "ScaleIntensityRange"):
            a_min, a_max = float(t["a_min"]), float(t["a_max"])
            b_min, b_max = float(t.get("b_min", 0.0)), float(t.get("b_max", 1.0))
            scale = (a_max - a_min) / (b_max - b_min)  # (x - a_min) / (a_max - a_min) * (b_max - b_min) + b_min
            clip = [a_min, a_max] if t.get("clip", False) else [-1e30, 1e30]
            norm = {"type": "ct", "clip": clip, "mean": a_min - b_min * scale, "std": scale}
            card["normalization"] = [norm] * channels
        elif name in ("NormalizeIntensityd", "NormalizeIntensity"):
            if t.get("subtrahend") is not None or t.get("divisor") is not None:
                raise ModelError(f"MONAI bundle {folder}: NormalizeIntensityd with fixed subtrahend/divisor "
                                 "is not translated.")
            card["normalization"] = [{"type": "zscore_foreground" if t.get("nonzero") else "zscore"}] * channels
        else:
            raise ModelError(f"MONAI bundle {folder}: preprocessing transform '{name}' is not one this extension "
                             "translates (Orientationd, Spacingd, ScaleIntensityRanged, NormalizeIntensityd).")
    return card


def _labels(metadata: dict[str, Any], folder: Path) -> list[dict[str, Any]]:
    from SurgicalAICore.terminology import check_label_names, color_for

    outputs = metadata.get("network_data_format", {}).get("outputs", {})
    pred = outputs.get("pred") or next(iter(outputs.values()), {})
    channel_def = pred.get("channel_def") if isinstance(pred, dict) else None
    if not isinstance(channel_def, dict) or len(channel_def) < 2:
        raise ModelError(f"MONAI bundle {folder}: metadata.json gives no output channel_def (label names).")
    try:
        names = {int(k): str(v) for k, v in channel_def.items()}
    except ValueError:
        raise ModelError(f"MONAI bundle {folder}: channel_def keys must be channel numbers.") from None
    if sorted(names) != list(range(len(names))):
        raise ModelError(f"MONAI bundle {folder}: channel_def channels {sorted(names)} must run 0..n.")
    labels = [{"value": v, "name": names[v], "color": color_for(names[v], v)} for v in sorted(names) if v > 0]
    check_label_names([e["name"] for e in labels], folder / "configs" / "metadata.json")
    return labels


def _weights(folder: Path, network: torch.nn.Module) -> tuple[Path, torch.nn.Module]:
    for name in ("model.pt", "model.ts"):
        path = folder / "models" / name
        if path.is_file():
            break
    else:
        raise ModelError(f"MONAI bundle {folder} has no models/model.pt or models/model.ts.")
    if path.suffix == ".ts":
        try:
            return path, torch.jit.load(str(path), map_location="cpu")
        except Exception as error:  # torch raises many types for corrupt files
            raise ModelError(f"Cannot read {path}: {str(error).splitlines()[0]}") from None
    state = safe_torch_load(path)
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]  # saved by the bundle's CheckpointSaver as {"model": ...}
    if not isinstance(state, dict):
        raise ModelError(f"{path} does not hold a state dict.")
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = next((line.strip() for line in str(error).splitlines()[1:] if line.strip()), str(error))
        raise ModelError(f"{path} does not fit the bundle's network_def: {first}") from None
    return path, network


def _inference(config: dict[str, Any]) -> dict[str, Any]:
    inferer = config.get("inferer", {})
    roi = inferer.get("roi_size") if isinstance(inferer, dict) else None
    mode = inferer.get("mode", "constant") if isinstance(inferer, dict) else "constant"
    return {"roi": roi, "overlap": float(inferer.get("overlap", 0.25)) if isinstance(inferer, dict) else 0.25,
            "blend": mode if mode in ("gaussian", "constant") else "constant"}


def load_monai_bundle(path: str | Path, device: torch.device):
    """A :class:`SegmentationModel` from a MONAI bundle folder."""
    from SegmentationAILib.loaded_model import SegmentationModel

    folder = Path(path)
    metadata = _read_json(folder / "configs" / "metadata.json")
    config = _read_json(folder / "configs" / "inference.json")
    labels = _labels(metadata, folder)
    inputs = metadata.get("network_data_format", {}).get("inputs", {})
    image = inputs.get("image") or next(iter(inputs.values()), {})
    channels = int(image.get("num_channels", 1))
    channel_def = image.get("channel_def") or {}
    names = [str(channel_def.get(str(n), image.get("modality", "image"))) for n in range(channels)]
    translated = _translate(_transforms(config, folder), folder, channels)
    inference = _inference(config)
    roi = inference.pop("roi") or image.get("spatial_shape")
    if not (isinstance(roi, list) and len(roi) == 3 and all(isinstance(r, int) and r > 0 for r in roi)):
        raise ModelError(f"MONAI bundle {folder}: no 3-D inferer roi_size (or input spatial_shape) to run windows of.")
    weights_path = next((p for p in (folder / "models" / "model.pt", folder / "models" / "model.ts") if p.is_file()),
                        None)
    if weights_path is None:
        raise ModelError(f"MONAI bundle {folder} has no models/model.pt or models/model.ts.")
    verify_or_record(folder, [folder / "configs" / "metadata.json", folder / "configs" / "inference.json",
                              weights_path])
    network = None if weights_path.suffix == ".ts" else _network(config, folder)
    _, network = _weights(folder, network)
    modality = str(image.get("modality", "CT")).upper()
    card = {
        "name": str(metadata.get("name", folder.name)), "version": str(metadata.get("version", "")),
        "task": "segmentation", "format": "monai_bundle", "modality": "CT" if modality == "CT" else "MR",
        "channels": names, "labels": labels, "spacing": translated.get("spacing", [0.0, 0.0, 0.0]),
        "patch_size": [int(r) for r in roi], "normalization": translated["normalization"],
        "inference": {**inference, "tta": False, "tta_axes": [0, 1, 2]},
    }
    if "orientation" in translated:
        card["orientation"] = translated["orientation"]
    wrapped = AxisOrderedNetwork([network.eval()], order=(2, 1, 0)).to(device).eval()
    check_outputs(wrapped, card, folder, device)
    return SegmentationModel(card, wrapped, device, folder)
