"""nnU-Net v2 result folders as segmentation models, run through this extension's own path.

A result folder (``nnUNetTrainer__nnUNetPlans__3d_fullres/``) holds ``dataset.json`` (channels,
labels), ``plans.json`` (per configuration: spacing, patch size, normalisation, network) and
``fold_*/checkpoint_final.pth`` (or ``checkpoint_best.pth``). The plans are translated into a
model card for the shared preprocessing (resampling to the plans' spacing, normalisation), the
MONAI sliding window with Gaussian blending and mirroring, and the folds are ensembled by
averaging their logits as nnU-Net does. The network is built by ``dynamic_network_architectures``
(nnU-Net's own network library) from the plans; only its known U-Nets and ``torch.nn`` layers may be
named, so a plans file cannot import arbitrary code.

Not reproduced: nnU-Net's crop to the non-zero region before prediction and its third-order
resampling (this path resamples linearly); region-based (overlapping-label) models are refused.
"""
from __future__ import annotations

import pydoc
import re
from pathlib import Path
from typing import Any

import torch

from SurgicalAICore.model_folder import read_json_object
from SurgicalAICore.errors import ModelError
from SegmentationAILib.formats.checksums import safe_torch_load, verify_or_record
from SegmentationAILib.formats.wrappers import AxisOrderedNetwork

CHECKPOINTS = ("checkpoint_final.pth", "checkpoint_best.pth")
_ARCHITECTURES = ("PlainConvUNet", "ResidualEncoderUNet", "ResidualUNet")
_FOLDER_NAME = re.compile(r"^(?P<trainer>[^_]+(?:_[^_]+)*)__(?P<plans>.+)__(?P<config>[^_].*)$")


def can_load(path: Path) -> bool:
    """An nnU-Net result folder: ``dataset.json`` with ``plans.json`` or ``fold_*`` folders, no model card."""
    path = Path(path)
    if not path.is_dir() or (path / "model.json").exists() or not (path / "dataset.json").is_file():
        return False
    return (path / "plans.json").is_file() or any(path.glob("fold_*"))


def _read_json(path: Path, what: str) -> dict[str, Any]:
    return read_json_object(path, f"nnU-Net folder {path.parent} has no {path.name} ({what}).")


def _fold_checkpoints(folder: Path, folds: list[str] | None) -> list[Path]:
    fold_dirs = sorted(p for p in folder.glob("fold_*") if p.is_dir())
    if folds is not None:
        wanted = {f"fold_{f}" for f in folds}
        missing = sorted(wanted - {p.name for p in fold_dirs})
        if missing:
            raise ModelError(f"nnU-Net folder {folder} has no {', '.join(missing)}.")
        fold_dirs = [p for p in fold_dirs if p.name in wanted]
    found = []
    for fold in fold_dirs:
        checkpoint = next((fold / name for name in CHECKPOINTS if (fold / name).is_file()), None)
        if checkpoint is not None:
            found.append(checkpoint)
    if not found:
        raise ModelError(f"nnU-Net folder {folder} has no fold_*/checkpoint_final.pth or checkpoint_best.pth "
                         "(the model was not trained, or the folds were not copied).")
    return found


def _labels(dataset: dict[str, Any], folder: Path) -> list[tuple[int, str]]:
    from SurgicalAICore.terminology import check_label_names

    raw = dataset.get("labels")
    if not isinstance(raw, dict) or not raw:
        raise ModelError(f"{folder / 'dataset.json'} lists no labels.")
    if any(not isinstance(v, int) or isinstance(v, bool) for v in raw.values()):
        raise ModelError(f"{folder / 'dataset.json'} uses region-based labels (lists of values); "
                         "only one-class-per-voxel nnU-Net models are supported.")
    values = {name: v for name, v in raw.items() if name != "ignore"}
    order = sorted(values.items(), key=lambda kv: kv[1])
    if [v for _, v in order] != list(range(len(order))):
        raise ModelError(f"{folder / 'dataset.json'} label values {sorted(values.values())} must run 0..n.")
    labels = [(v, name) for name, v in order if v > 0]
    check_label_names([name for _, name in labels], folder / "dataset.json")
    return labels


def _normalizations(config: dict[str, Any], plans: dict[str, Any], channels: int, folder: Path) -> list[dict]:
    schemes, masks = config.get("normalization_schemes"), config.get("use_mask_for_norm")
    if (not isinstance(schemes, list) or len(schemes) != channels or not isinstance(masks, list)
            or len(masks) != channels):
        raise ModelError(f"plans.json in {folder} gives {len(schemes or [])} normalisation scheme(s) for "
                         f"{channels} channel(s).")
    props = plans.get("foreground_intensity_properties_per_channel", {})
    out = []
    for n, (scheme, masked) in enumerate(zip(schemes, masks, strict=True)):
        if scheme == "CTNormalization":
            p = props.get(str(n))
            if not p:
                raise ModelError(f"plans.json in {folder} lacks the intensity properties of channel {n} for "
                                 "CT normalisation.")
            out.append({"type": "ct", "clip": [float(p["percentile_00_5"]), float(p["percentile_99_5"])],
                        "mean": float(p["mean"]), "std": max(float(p["std"]), 1e-8)})
        elif scheme == "ZScoreNormalization":
            out.append({"type": "zscore_foreground" if masked else "zscore"})
        elif scheme == "NoNormalization":
            out.append({"type": "none"})
        else:
            raise ModelError(f"plans.json in {folder} names normalisation '{scheme}', which is not supported "
                             "(CTNormalization, ZScoreNormalization, NoNormalization).")
    return out


def _component(name: Any, folder: Path) -> Any:
    """A ``torch.nn`` layer class named by the plans (nothing else may be imported from a plans file)."""
    if name is None:
        return None
    found = pydoc.locate(name) if isinstance(name, str) and name.startswith("torch.nn.") else None
    if not (isinstance(found, type) and issubclass(found, torch.nn.Module)):
        raise ModelError(f"plans.json in {folder} names an unknown component {name!r} "
                         "(only torch.nn layers are accepted).")
    return found


def build_plans_network(config: dict[str, Any], in_channels: int, out_channels: int, folder: Path) -> torch.nn.Module:
    """The network of one plans configuration, built by nnU-Net's network library."""
    try:
        from dynamic_network_architectures.architectures import unet
    except ImportError:
        raise ModelError("nnU-Net models need the 'dynamic-network-architectures' package "
                         "(pip install dynamic-network-architectures==0.4.4).") from None
    arch = config.get("architecture")
    if not isinstance(arch, dict) or "network_class_name" not in arch:
        raise ModelError(f"plans.json in {folder} is in the old nnU-Net format (no 'architecture'); re-plan it "
                         "with nnU-Net >= 2.4.")
    class_name = str(arch["network_class_name"]).rsplit(".", 1)[-1]
    if class_name not in _ARCHITECTURES:
        raise ModelError(f"plans.json in {folder} names network '{arch['network_class_name']}', which is not "
                         f"supported ({', '.join(_ARCHITECTURES)}).")
    kwargs = dict(arch.get("arch_kwargs", {}))
    for key in arch.get("_kw_requires_import", []):
        kwargs[key] = _component(kwargs.get(key), folder)
    kwargs["deep_supervision"] = False
    try:
        return getattr(unet, class_name)(input_channels=in_channels, num_classes=out_channels, **kwargs)
    except (TypeError, ValueError, AssertionError) as error:
        raise ModelError(f"plans.json in {folder}: the network cannot be built ({error}).") from None


def _configuration_of(checkpoint: dict[str, Any], path: Path) -> str:
    init = checkpoint.get("init_args")
    if not isinstance(checkpoint.get("network_weights"), dict) or not isinstance(init, dict):
        raise ModelError(f"{path} is not an nnU-Net v2 checkpoint (no network_weights / init_args).")
    return str(init.get("configuration", ""))


def _axes_ijk(axes_plans: list[int], transpose: list[int]) -> list[int]:
    """Plans-order spatial axes -> i/j/k axis numbers (i = 0) of the SimpleITK array [k, j, i]."""
    return sorted(2 - transpose[a] for a in axes_plans)


def _in_kji(values: list[Any], transpose: list[int]) -> list[Any]:
    out: list[Any] = [None] * 3
    for a, v in enumerate(values):
        out[transpose[a]] = v
    return out


def _read_folder(folder: Path, folds: list[str] | None):
    dataset = _read_json(folder / "dataset.json", "channels and labels")
    plans = _read_json(folder / "plans.json", "the plans: spacing, normalisation, network")
    checkpoints = _fold_checkpoints(folder, folds)
    verify_or_record(folder, [folder / "dataset.json", folder / "plans.json", *checkpoints])
    loaded = [(path, safe_torch_load(path)) for path in checkpoints]
    for path, ckpt in loaded:
        if not isinstance(ckpt, dict):
            raise ModelError(f"{path} is not an nnU-Net v2 checkpoint.")
    names = {path: _configuration_of(ckpt, path) for path, ckpt in loaded}
    configuration = names[checkpoints[0]]
    expected = _FOLDER_NAME.match(folder.name)
    expected_config = expected.group("config") if expected else configuration
    for path, name in names.items():
        if name != expected_config:
            raise ModelError(f"{path.relative_to(folder)} was trained for configuration '{name}', but this folder "
                             f"is '{expected_config}'; a fold of another configuration was copied in.")
    if configuration not in plans.get("configurations", {}):
        raise ModelError(f"plans.json in {folder} has no configuration '{configuration}'.")
    return dataset, plans, configuration, loaded


def _resolved_configuration(plans: dict[str, Any], name: str) -> dict[str, Any]:
    configs, seen = plans["configurations"], []
    config = dict(configs[name])
    while "inherits_from" in config:
        parent = config.pop("inherits_from")
        if parent in seen or parent not in configs:
            raise ModelError(f"plans.json configuration '{name}' inherits from a missing or circular '{parent}'.")
        seen.append(parent)
        config = {**configs[parent], **config}
    return config


def load_nnunet_folder(path: str | Path, device: torch.device, folds: list[str] | None = None,
                       mirror_tta: bool = True):
    """A :class:`SegmentationModel` from an nnU-Net v2 result folder (all folds found, ensembled; mirrored
    over the checkpoint's allowed axes unless ``mirror_tta`` is False)."""
    from SegmentationAILib.loaded_model import SegmentationModel
    from SurgicalAICore.terminology import color_for

    folder = Path(path)
    dataset, plans, configuration, loaded = _read_folder(folder, folds)
    config = _resolved_configuration(plans, configuration)
    channel_names = dataset.get("channel_names") or dataset.get("modality") or {}
    channels = [str(channel_names[k]) for k in sorted(channel_names, key=int)]
    if not channels:
        raise ModelError(f"{folder / 'dataset.json'} lists no channel_names.")
    labels = _labels(dataset, folder)
    transpose = [int(a) for a in plans.get("transpose_forward", [0, 1, 2])]
    patch, spacing = list(config["patch_size"]), list(config["spacing"])
    two_d = len(patch) == 2
    if two_d:  # slices along the first plans axis; their spacing along it stays as the input's
        patch, spacing = [1, *patch], [0.0, *spacing]
    networks = []
    for ckpt_path, ckpt in loaded:
        network = build_plans_network(config, len(channels), len(labels) + 1, folder)
        try:
            network.load_state_dict(ckpt["network_weights"], strict=True)
        except RuntimeError as error:
            first = next((line.strip() for line in str(error).splitlines()[1:] if line.strip()), str(error))
            raise ModelError(f"{ckpt_path.relative_to(folder)} does not fit the plans' network: {first}") from None
        networks.append(network)
    mirror = loaded[0][1].get("inference_allowed_mirroring_axes")
    mirror = list(range(len(config["patch_size"]))) if mirror is None else [int(a) for a in mirror]
    mirror = [a + 1 for a in mirror] if two_d else mirror
    norms = _normalizations(config, plans, len(channels), folder)
    card = {
        "name": folder.parent.name if expected_name(folder) else folder.name,
        "version": f"nnU-Net v2 {configuration}", "task": "segmentation", "format": "nnunetv2",
        "modality": "CT" if any(n["type"] == "ct" for n in norms) else "MR",
        "channels": channels,
        "labels": [{"value": v, "name": name, "color": color_for(name, v)} for v, name in labels],
        "spacing": [float(s) for s in reversed(_in_kji(spacing, transpose))],
        "patch_size": [int(p) for p in reversed(_in_kji(patch, transpose))],
        "normalization": norms,
        # mirroring happens in the adapter, on logits as nnU-Net does; the shared TTA would average probabilities
        "inference": {"overlap": 0.5, "blend": "gaussian", "tta": False, "tta_axes": [0, 1, 2]},
        "mirror_axes_ijk": _axes_ijk(mirror, transpose),
        "folds": [p.parent.name for p, _ in loaded],
        "configuration": configuration,
    }
    mirror_kji = [2 - a for a in card["mirror_axes_ijk"]] if mirror_tta else []
    network = AxisOrderedNetwork(networks, order=transpose, two_d=two_d, mirror_axes=mirror_kji).to(device).eval()
    return SegmentationModel(card, network, device, folder)


def expected_name(folder: Path) -> bool:
    """True where the folder is named as nnU-Net names result folders (trainer__plans__configuration)."""
    return _FOLDER_NAME.match(folder.name) is not None
