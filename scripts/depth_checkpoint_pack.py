"""Pack a depth-training checkpoint small enough to commit, or unpack it to resume a training leg.

``pack last.pt packed.pt``: weights as float16, Adam moments as bfloat16 (the second moment needs
bfloat16's range), the rest as is; about half the size. ``unpack packed.pt last.pt``: back to
float32, so ``surgicalai train-depth --resume`` continues from it (the lost precision is far below
one optimiser step's change). ``model packed.pt MODEL_DIR``: the checkpoint's network as a depth model folder
(float16 weights, as packed; the card's metrics are added by ``scripts/finalize_depth_model.py``).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _cast(obj, dtype):
    if isinstance(obj, torch.Tensor) and obj.is_floating_point():
        return obj.to(dtype)
    if isinstance(obj, dict):
        return {k: _cast(v, dtype) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_cast(v, dtype) for v in obj]
    return obj


def pack(src: str, dst: str) -> None:
    ckpt = torch.load(src, map_location="cpu", weights_only=True)
    ckpt["model"] = _cast(ckpt["model"], torch.float16)
    ckpt["optimizer"]["state"] = _cast(ckpt["optimizer"]["state"], torch.bfloat16)
    torch.save(ckpt, dst)


def unpack(src: str, dst: str) -> None:
    ckpt = torch.load(src, map_location="cpu", weights_only=True)
    ckpt["model"] = _cast(ckpt["model"], torch.float32)
    ckpt["optimizer"]["state"] = _cast(ckpt["optimizer"]["state"], torch.float32)
    torch.save(ckpt, dst)


def to_model(src: str, dst: str) -> None:
    sys.path[:0] = [str(ROOT), str(ROOT / "SurgicalDepth")]
    from SurgicalAICore.model_folder import write_model_folder
    from SurgicalDepthLib.depth.model import DEPTH_SCHEMA, depth_card
    from SurgicalDepthLib.depth.network import build_depth_network

    ckpt = torch.load(src, map_location="cpu", weights_only=True)
    config = json.loads(ckpt["config"])
    net = build_depth_network(config["hyper"])
    net.load_state_dict(ckpt["model"])
    training = {"steps": int(ckpt["step"]), "batch_size": config["batch_size"], "crop": config["crop"],
                "lr": config["lr"], "silog_lambda": config["silog_lambda"],
                "gradient_weight": config["gradient_weight"], "ssi_weight": config.get("ssi_weight", 0.0),
                "seed": config["seed"], "minutes": round(float(ckpt.get("minutes", 0.0)), 1)}
    camera = json.loads((ROOT / "Resources/Models/endoscopy-depth/model.json").read_text())["camera"]
    card = depth_card(Path(dst).name, net, tuple(config["crop"]), training, {}, camera)
    write_model_folder(dst, card, _cast(net.state_dict(), torch.float16), DEPTH_SCHEMA, overwrite=True)


if __name__ == "__main__":
    commands = {"pack": pack, "unpack": unpack, "model": to_model}
    if len(sys.argv) != 4 or sys.argv[1] not in commands:
        sys.exit("usage: depth_checkpoint_pack.py pack|unpack|model SRC DST")
    commands[sys.argv[1]](sys.argv[2], sys.argv[3])
