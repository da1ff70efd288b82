"""Model folders: weights + ``model.json`` (the model card) + ``weights.sha256``.

Shared by every model of the extension (segmentation and depth). Each task supplies a
:class:`CardSchema`; loading checks the folder, the schema (unknown keys are errors, so typos
never pass silently) and the SHA-256 of the weights before a single tensor is read, and weights
are read with ``weights_only=True`` so a model file cannot run code. Writing is atomic: the
folder appears complete or not at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Mapping

import torch

from SurgicalAICore.errors import InputError, ModelError

CARD_NAME = "model.json"
HASH_NAME = "weights.sha256"
FORMAT_VERSION = 1

_BASE_REQUIRED: dict[str, Any] = {
    "format_version": int,
    "name": str,
    "version": str,
    "task": str,
    "weights": str,
    "weights_format": str,
}
_BASE_OPTIONAL: dict[str, Any] = {
    "description": str,
    "architecture": dict,
    "training": dict,
    "metrics": dict,
    "license": str,
    "authors": list,
    "citation": str,
    "created": str,
    "intended_use": str,
    "limitations": str,  # the card's honest reading of what the model does not do
}


@dataclass
class CardSchema:
    task: str
    required: dict[str, type | tuple[type, ...]] = field(default_factory=dict)
    optional: dict[str, type | tuple[type, ...]] = field(default_factory=dict)


@dataclass
class ModelFolder:
    path: Path
    card: dict[str, Any]

    @property
    def weights_path(self) -> Path:
        return self.path / self.card["weights"]

    @property
    def is_torchscript(self) -> bool:
        return self.card["weights_format"] == "torchscript"


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_types(card: Mapping[str, Any], spec: Mapping[str, Any], where: Path) -> None:
    for key, types in spec.items():
        if key in card and not isinstance(card[key], types):
            names = types.__name__ if isinstance(types, type) else "/".join(t.__name__ for t in types)
            raise ModelError(f"Model card {where}: '{key}' must be {names}, got {type(card[key]).__name__}.")


def validate_card(card: Mapping[str, Any], schema: CardSchema, where: Path) -> None:
    required = {**_BASE_REQUIRED, **schema.required}
    allowed = set(required) | set(_BASE_OPTIONAL) | set(schema.optional)
    missing = sorted(set(required) - set(card))
    if missing:
        raise ModelError(f"Model card {where} lacks required field(s): {', '.join(missing)}.")
    unknown = sorted(set(card) - allowed)
    if unknown:
        raise ModelError(f"Model card {where} has unknown field(s): {', '.join(unknown)}.")
    _check_types(card, required, where)
    _check_types(card, {**_BASE_OPTIONAL, **schema.optional}, where)
    if card["format_version"] != FORMAT_VERSION:
        raise ModelError(
            f"Model card {where}: format_version {card['format_version']} is not supported (expected {FORMAT_VERSION})."
        )
    if card["task"] != schema.task:
        raise ModelError(f"Model folder {where.parent} is a '{card['task']}' model, not a '{schema.task}' model.")
    if card["weights_format"] not in ("state_dict", "torchscript"):
        raise ModelError(f"Model card {where}: weights_format must be 'state_dict' or 'torchscript'.")


def read_json_object(path: Path, missing: str | None = None, label: str = "") -> dict[str, Any]:
    """A JSON file that must hold an object; each problem is one ``ModelError`` line naming the file.

    ``missing``: the message when the file is absent (None: the read error says so); ``label`` prefixes the
    path in the other messages (e.g. "Model card ")."""
    if missing is not None and not path.is_file():
        raise ModelError(missing)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"{label}{path} is not valid JSON ({error}).") from None
    if not isinstance(data, dict):
        raise ModelError(f"{label}{path} must hold a JSON object.")
    return data


def read_model_folder(path: str | Path, schema: CardSchema) -> ModelFolder:
    """Open and check a model folder (card schema and weights hash); reads no weights."""
    folder = Path(path)
    if not folder.is_dir():
        raise ModelError(f"Model folder not found: {folder}")
    card_path = folder / CARD_NAME
    card = read_json_object(card_path, f"Model folder {folder} has no {CARD_NAME}.", "Model card ")
    validate_card(card, schema, card_path)
    model = ModelFolder(folder, card)
    if not model.weights_path.is_file():
        raise ModelError(f"Model weights {model.weights_path} are missing.")
    hash_path = folder / HASH_NAME
    if not hash_path.is_file():
        raise ModelError(f"Model folder {folder} has no {HASH_NAME}; the weights cannot be verified.")
    expected = hash_path.read_text().split()[0].strip().lower() if hash_path.read_text().strip() else ""
    actual = sha256_of(model.weights_path)
    if expected != actual:
        raise ModelError(
            f"Model weights {model.weights_path.name} do not match their SHA-256 "
            f"(expected {expected[:12]}…, got {actual[:12]}…): the file is corrupt or was changed."
        )
    return model


def load_weights(model: ModelFolder, map_location: str | torch.device = "cpu"):
    """The state dict (``weights_only``) or the TorchScript module of a checked model folder."""
    try:
        if model.is_torchscript:
            return torch.jit.load(str(model.weights_path), map_location=map_location)
        state = torch.load(str(model.weights_path), map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises many types for corrupt files
        raise ModelError(f"Cannot read model weights {model.weights_path}: {str(error).splitlines()[0]}") from None
    if not isinstance(state, dict):
        raise ModelError(f"Model weights {model.weights_path} do not hold a state dict.")
    return state


def write_model_folder(
    path: str | Path, card: dict[str, Any], weights: Any, schema: CardSchema | None = None, overwrite: bool = False
) -> ModelFolder:
    """Write a model folder atomically. ``weights`` is a state dict or a TorchScript module."""
    folder = Path(path)
    if folder.exists() and not overwrite:
        raise InputError(f"Output model folder {folder} already exists; choose another or allow overwriting.")
    folder.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(folder.parent, os.W_OK):
        raise InputError(f"Cannot write to {folder.parent}.")
    card = dict(card)
    card.setdefault("format_version", FORMAT_VERSION)
    scripted = isinstance(weights, torch.jit.ScriptModule)
    card.setdefault("weights_format", "torchscript" if scripted else "state_dict")
    card.setdefault("weights", "model.ts" if scripted else "model.pt")
    if schema is not None:
        validate_card(card, schema, folder / CARD_NAME)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
    try:
        weights_file = tmp / card["weights"]
        if scripted:
            torch.jit.save(weights, str(weights_file))
        else:
            torch.save(
                {k: v.detach().cpu() if torch.is_tensor(v) else v for k, v in weights.items()}, str(weights_file)
            )
        (tmp / HASH_NAME).write_text(f"{sha256_of(weights_file)}  {card['weights']}\n")
        (tmp / CARD_NAME).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        # mkdtemp makes an owner-only folder; a model is shared, read-only data (the umask still applies)
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)
        from SurgicalAICore.signals import signals_deferred

        with signals_deferred():  # an interrupt never leaves the old folder removed and the new one not in
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ModelFolder(folder, card)
