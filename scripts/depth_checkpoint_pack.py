"""Pack a depth-training checkpoint small enough to commit, or unpack it to resume a training leg.

``pack last.pt packed.pt``: weights as float16, Adam moments as bfloat16 (the second moment needs
bfloat16's range), the rest as is; about half the size. ``unpack packed.pt last.pt``: back to
float32, so ``surgicalai train-depth --resume`` continues from it (the lost precision is far below
one optimiser step's change).
"""
from __future__ import annotations

import sys

import torch


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


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("pack", "unpack"):
        sys.exit("usage: depth_checkpoint_pack.py pack|unpack SRC DST")
    (pack if sys.argv[1] == "pack" else unpack)(sys.argv[2], sys.argv[3])
