"""Segmentation model folders: the model card schema, building the network, loading and saving.

A segmentation model is a model folder (see :mod:`model_folder`) whose ``model.json`` follows
:data:`SEG_SCHEMA`. The network is a MONAI ``UNet`` built from the card's ``architecture``;
output channel 0 is background and channel ``v`` is the label with ``value == v``, so a model
always has ``len(labels) + 1`` outputs. TorchScript folders load too (no architecture needed).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any
from collections.abc import Mapping

import torch

from SurgicalAICore.errors import InputError, ModelError
from SurgicalAICore.model_folder import (
    CardSchema,
    ModelFolder,
    load_weights,
    read_model_folder,
    validate_card,
    write_model_folder,
)
from SurgicalAICore.terminology import check_terminology
from SegmentationAILib.loaded_model import SegmentationModel

DEFAULT_MODEL_NAME = "abdomen-ct-unet"

SEG_SCHEMA = CardSchema(
    task="segmentation",
    required={
        "modality": str,
        "channels": list,
        "labels": list,
        "spacing": list,
        "patch_size": list,
        "normalization": list,
        "architecture": dict,
    },
    optional={"preprocessing": dict, "postprocessing": dict, "inference": dict, "orientation": str},
)

# a valid code names one of R/L, one of A/P, one of S/I (sorted letters of every such triple)
_ORIENTATIONS = [sorted(a + b + c) for a in "RL" for b in "AP" for c in "SI"]
_NORM_TYPES = ("ct", "zscore_foreground", "zscore", "none")
_ARCH_KEYS = {"name", "spatial_dims", "channels", "strides", "num_res_units", "norm", "dropout"}
_PRE_KEYS = {"clahe": bool, "denoise": bool}
_POST_KEYS = {"largest_component", "fill_holes"}
_INF_KEYS = {"overlap", "blend", "tta", "tta_axes", "pad"}


def _bad(where: Any, message: str) -> ModelError:
    return ModelError(f"Model card {where}: {message}")


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check_labels(labels: list[Any], where: Any) -> None:
    if not labels:
        raise _bad(where, "'labels' is empty; a segmentation model needs at least one structure.")
    values = []
    for entry in labels:
        if not isinstance(entry, dict) or not {"value", "name", "color"} <= set(entry) <= {
            "value",
            "name",
            "color",
            "terminology",
        }:
            raise _bad(
                where,
                "each label must be {\"value\": int, \"name\": str, \"color\": [r, g, b]} "
                "(optionally \"terminology\").",
            )
        if "terminology" in entry:
            check_terminology(entry["terminology"], where)
        value, name, color = entry["value"], entry["name"], entry["color"]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise _bad(where, f"label value {value!r} must be an integer >= 1 (0 is background).")
        if not isinstance(name, str) or not name.strip():
            raise _bad(where, f"label {value} has no name.")
        if not isinstance(color, list) or len(color) != 3 or not all(_is_number(c) and 0.0 <= c <= 1.0 for c in color):
            raise _bad(where, f"label '{name}' colour {color!r} must be three numbers in 0..1.")
        values.append(value)
    if sorted(values) != list(range(1, len(values) + 1)):
        raise _bad(where, f"label values {sorted(values)} must be unique and run 1..{len(values)}.")
    names = [e["name"] for e in labels]
    if len(set(names)) != len(names):
        raise _bad(where, "label names must be unique.")


def _check_normalization(card: Mapping[str, Any], where: Any) -> None:
    norms, channels = card["normalization"], card["channels"]
    if not channels or not all(isinstance(c, str) for c in channels):
        raise _bad(where, "'channels' must be a non-empty list of channel names.")
    if len(norms) != len(channels):
        raise _bad(where, f"'normalization' has {len(norms)} entries but there are {len(channels)} channel(s).")
    for norm in norms:
        kind = norm.get("type") if isinstance(norm, dict) else None
        if kind not in _NORM_TYPES:
            raise _bad(where, f"normalization type {kind!r} must be one of {', '.join(_NORM_TYPES)}.")
        if kind == "ct":
            if set(norm) != {"type", "clip", "mean", "std"}:
                raise _bad(where, "CT normalization needs exactly type, clip, mean, std.")
            clip = norm["clip"]
            if not (
                isinstance(clip, list) and len(clip) == 2 and all(_is_number(c) for c in clip) and clip[0] < clip[1]
            ):
                raise _bad(where, f"CT clip {clip!r} must be [low, high] with low < high.")
            if not (_is_number(norm["mean"]) and _is_number(norm["std"]) and norm["std"] > 0):
                raise _bad(where, "CT normalization mean must be a number and std a positive number.")
        elif set(norm) != {"type"}:
            raise _bad(where, f"normalization '{kind}' takes no other fields.")


def _check_geometry(card: Mapping[str, Any], where: Any) -> None:
    spacing, patch = card["spacing"], card["patch_size"]
    if len(spacing) != 3 or not all(_is_number(s) and s > 0 for s in spacing):
        raise _bad(where, f"'spacing' {spacing!r} must be three positive numbers (mm).")
    if len(patch) != 3 or not all(
        isinstance(p, int) and not isinstance(p, bool) and p > 0 and p % 16 == 0 for p in patch
    ):
        raise _bad(where, f"'patch_size' {patch!r} must be three positive multiples of 16.")
    if card["modality"] not in ("CT", "MR"):
        raise _bad(where, f"'modality' {card['modality']!r} must be 'CT' or 'MR'.")


def _check_options(card: Mapping[str, Any], where: Any) -> None:
    pre = card.get("preprocessing", {})
    for key, value in pre.items():
        if key not in _PRE_KEYS or not isinstance(value, bool):
            raise _bad(where, f"preprocessing option {key!r} is unknown or not true/false (known: clahe, denoise).")
    post = card.get("postprocessing", {})
    if set(post) - _POST_KEYS:
        raise _bad(where, f"unknown postprocessing option(s): {', '.join(sorted(set(post) - _POST_KEYS))}.")
    names = {e["name"] for e in card["labels"]}
    lcc = post.get("largest_component", False)
    if isinstance(lcc, list):
        unknown = [n for n in lcc if n not in names]
        if unknown:
            raise _bad(where, f"largest_component names unknown label(s): {', '.join(map(str, unknown))}.")
    elif not isinstance(lcc, bool):
        raise _bad(where, "largest_component must be true/false or a list of label names.")
    if not isinstance(post.get("fill_holes", False), bool):
        raise _bad(where, "fill_holes must be true or false.")
    orientation = card.get("orientation", "RAS")
    if sorted(orientation.upper()) not in _ORIENTATIONS:
        raise _bad(where, f"orientation '{orientation}' is not three axis codes such as 'RAS' or 'LPS'.")
    inf = card.get("inference", {})
    if set(inf) - _INF_KEYS:
        raise _bad(where, f"unknown inference option(s): {', '.join(sorted(set(inf) - _INF_KEYS))}.")
    if "overlap" in inf and not (_is_number(inf["overlap"]) and 0 <= inf["overlap"] < 1):
        raise _bad(where, "inference overlap must be in [0, 1).")
    if inf.get("blend", "gaussian") not in ("gaussian", "constant"):
        raise _bad(where, "inference blend must be 'gaussian' or 'constant'.")
    if "tta" in inf and not isinstance(inf["tta"], bool):
        raise _bad(where, "inference tta must be true or false.")
    if inf.get("pad", "zero") not in ("zero", "minimum"):
        raise _bad(where, "inference pad must be 'zero' or 'minimum'.")
    axes = inf.get("tta_axes", [0, 1, 2])
    if not isinstance(axes, list) or not all(a in (0, 1, 2) for a in axes) or len(set(axes)) != len(axes):
        raise _bad(where, "inference tta_axes must list distinct axes among 0 (i), 1 (j), 2 (k).")


def _check_architecture(card: Mapping[str, Any], where: Any) -> None:
    if card["weights_format"] == "torchscript":
        return
    arch = card["architecture"]
    missing = {"name", "channels", "strides"} - set(arch)
    if missing or set(arch) - _ARCH_KEYS:
        raise _bad(
            where,
            f"architecture needs name, channels, strides (optional spatial_dims, num_res_units, "
            f"norm, dropout); got {sorted(arch)}.",
        )
    if arch["name"] != "UNet":
        raise _bad(where, f"architecture '{arch['name']}' is not supported (only MONAI 'UNet').")
    if arch.get("spatial_dims", 3) != 3:
        raise _bad(where, "only 3-D networks (spatial_dims 3) are supported.")
    if arch.get("norm", "instance") not in ("instance", "batch"):
        raise _bad(where, "architecture norm must be 'instance' or 'batch'.")
    channels, strides = arch["channels"], arch["strides"]
    if (
        not isinstance(channels, list)
        or not isinstance(strides, list)
        or len(channels) < 2
        or len(strides) != len(channels) - 1
        or not all(isinstance(c, int) and c > 0 for c in channels)
        or not all(isinstance(s, int) and s in (1, 2) for s in strides)
    ):
        raise _bad(where, "architecture channels must be >= 2 positive ints and strides one fewer, each 1 or 2.")
    down = 2 ** sum(1 for s in strides if s == 2)
    if any(p % down for p in card["patch_size"]):
        raise _bad(where, f"patch_size {card['patch_size']} must be divisible by {down} for these strides.")
    dropout = arch.get("dropout", 0.0)
    if not (_is_number(dropout) and 0 <= dropout < 1):
        raise _bad(where, "architecture dropout must be in [0, 1).")


def validate_seg_card(card: Mapping[str, Any], where: Any = "model.json") -> None:
    """Everything beyond field types: labels, colours, normalization, geometry, options, architecture."""
    validate_card(card, SEG_SCHEMA, Path(str(where)))
    _check_labels(card["labels"], where)
    _check_normalization(card, where)
    _check_geometry(card, where)
    _check_options(card, where)
    _check_architecture(card, where)


def build_network(card: Mapping[str, Any]) -> torch.nn.Module:
    """The MONAI UNet described by the card (untrained), with ``len(labels) + 1`` outputs."""
    from monai.networks.nets import UNet

    arch = card["architecture"]
    return UNet(
        spatial_dims=3,
        in_channels=len(card["channels"]),
        out_channels=len(card["labels"]) + 1,
        channels=tuple(arch["channels"]),
        strides=tuple(arch["strides"]),
        num_res_units=int(arch.get("num_res_units", 0)),
        norm=arch.get("norm", "instance"),
        dropout=float(arch.get("dropout", 0.0)),
    )


def default_model_path() -> Path:
    from SurgicalAICore.resources import models_dir

    return models_dir() / DEFAULT_MODEL_NAME


def _final_output_count(state: Mapping[str, torch.Tensor]) -> int | None:
    """Output channels of the last layer of a MONAI UNet state dict (its last bias), if there is one."""
    for key in reversed(list(state)):
        if key.endswith("bias") and state[key].ndim == 1:
            return int(state[key].shape[0])
    return None


def _check_outputs(network: torch.nn.Module, card: Mapping[str, Any], folder: Path) -> None:
    """Run a tiny input through a TorchScript network to count its outputs."""
    size = 16
    x = torch.zeros((1, len(card["channels"]), size, size, size), device=next(network.parameters()).device)
    with torch.no_grad():
        try:
            out = network(x)
        except Exception as error:
            raise ModelError(
                f"Model in {folder} cannot run on a {len(card['channels'])}-channel input: {str(error).splitlines()[0]}"
            ) from None
    if out.ndim != 5 or out.shape[1] != len(card["labels"]) + 1:
        raise ModelError(
            f"Model in {folder} gives {out.shape[1] if out.ndim > 1 else '?'} output channels but its card "
            f"lists {len(card['labels'])} labels (wrong label count; expected {len(card['labels']) + 1})."
        )


def load_segmentation_model(path: str | Path | None = None, device: str | torch.device = "auto") -> SegmentationModel:
    """Load and check a segmentation model folder (``None``: the bundled default model)."""
    from SurgicalAICore.device import select_device
    from SegmentationAILib.formats.loaders import find_loader

    folder = Path(path) if path is not None else default_model_path()
    if path is not None and not str(path).strip():
        raise ModelError("No model folder was given.")
    foreign = find_loader(folder)  # nnU-Net result folders, MONAI bundles (formats/)
    if foreign is not None:
        return foreign.load(folder, device if isinstance(device, torch.device) else select_device(device))
    model = read_model_folder(folder, SEG_SCHEMA)
    validate_seg_card(model.card, folder / "model.json")
    dev = device if isinstance(device, torch.device) else select_device(device)
    weights = load_weights(model, map_location="cpu")
    if model.is_torchscript:
        network = weights
        network.eval()
        _check_outputs(network, model.card, folder)
    else:
        expected = len(model.card["labels"]) + 1
        found = _final_output_count(weights)
        if found is not None and found != expected:
            raise ModelError(
                f"Model weights in {folder} have {found} output channels but the card lists "
                f"{len(model.card['labels'])} labels (wrong label count; expected {expected})."
            )
        network = build_network(model.card)
        try:
            network.load_state_dict(weights, strict=True)
        except RuntimeError as error:
            first = next((line.strip() for line in str(error).splitlines()[1:] if line.strip()), str(error))
            raise ModelError(f"Model weights in {folder} do not fit the card's architecture: {first}") from None
    network.to(dev).eval()
    return SegmentationModel(dict(model.card), network, dev, folder)


def save_segmentation_model(
    path: str | Path, network: torch.nn.Module, card: dict[str, Any], overwrite: bool = False
) -> ModelFolder:
    """Write ``network`` (state dict, or TorchScript if scripted) with its card as a model folder."""
    card = dict(card)
    card.setdefault("task", "segmentation")
    scripted = isinstance(network, torch.jit.ScriptModule)
    card.setdefault("weights_format", "torchscript" if scripted else "state_dict")
    card.setdefault("weights", "model.ts" if scripted else "model.pt")
    card.setdefault("format_version", 1)
    validate_seg_card(card, Path(path) / "model.json")
    expected = len(card["labels"]) + 1
    if not scripted:
        found = _final_output_count(network.state_dict())
        if found is not None and found != expected:
            raise InputError(
                f"The network has {found} outputs but the card lists {len(card['labels'])} labels "
                f"(expected {expected} outputs)."
            )
    weights = network if scripted else network.state_dict()
    return write_model_folder(path, card, weights, SEG_SCHEMA, overwrite=overwrite)


def label_names(model: SegmentationModel | Mapping[str, Any]) -> dict[int, str]:
    """{value: name} of a model or card."""
    card = model.card if isinstance(model, SegmentationModel) else model
    return {int(e["value"]): str(e["name"]) for e in card["labels"]}


def model_summary(path: str | Path | None = None) -> str:
    """One line about a model folder for the panel (never raises: problems are described instead)."""
    folder = Path(path) if path else default_model_path()
    if path is not None and not str(path).strip():
        return "Choose a model folder."
    from SegmentationAILib.formats import find_loader

    foreign = find_loader(folder)
    if foreign is not None:
        return f"{folder.name}: a {foreign.name} (checked when loaded)."
    try:
        model = read_model_folder(folder, SEG_SCHEMA)
        validate_seg_card(model.card, folder / "model.json")
    except (ModelError, InputError) as error:
        return f"Model problem: {error}"
    card = model.card
    names = ", ".join(e["name"] for e in sorted(card["labels"], key=lambda e: e["value"]))
    dice = card.get("metrics", {}).get("mean_dice_on_training_case")
    extra = f"; mean Dice on its training case {dice:.2f}" if isinstance(dice, (int, float)) else ""
    return f"{card['name']} {card['version']} ({card['modality']}, {card['spacing'][0]:g} mm): {names}{extra}."
