"""Compact encoder-decoder for metric monocular depth (mm), sized for real time on a laptop CPU.

Encoder: stride-2 stem and four stride-2 stages of residual 3x3 blocks (1/2 ... 1/32). Decoder:
bilinear up-sampling with skip connections, prediction at 1/2 resolution, up-sampled to the input.
The head predicts log-depth around ``depth_scale_mm`` so the output is positive and the network
works in relative terms. Any input whose sides are multiples of 32 works; it scripts with
TorchScript.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
import torch.nn.functional as F


def make_norm(kind: str, channels: int) -> nn.Module:
    """Batch norm folds into the convolutions at inference; group norm does not depend on the batch,
    which keeps the global depth offset steady when training with small CPU batches."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(max(1, channels // 8), channels)
    raise ValueError(f"Unknown normalisation '{kind}': use batch or group.")


def conv_bn(cin: int, cout: int, stride: int = 1, norm: str = "batch") -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), make_norm(norm, cout), nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, norm: str = "batch"):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn1 = make_norm(norm, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = make_norm(norm, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(x + self.bn2(self.conv2(y)), inplace=True)


class UpBlock(nn.Module):
    def __init__(self, cin: int, cskip: int, cout: int, norm: str = "batch"):
        super().__init__()
        self.reduce = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), make_norm(norm, cout), nn.ReLU(inplace=True))
        self.fuse = conv_bn(cout + cskip, cout, norm=norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.reduce(x)
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([x, skip], dim=1))


class CompactDepthNet(nn.Module):
    """Metric depth (mm) from an RGB image normalised to roughly zero mean, unit variance."""

    def __init__(self, channels: Sequence[int] = (24, 32, 64, 128, 192), blocks: Sequence[int] = (0, 1, 1, 2, 2),
                 depth_scale_mm: float = 50.0, max_depth_mm: float = 300.0, out_stride: int = 2, norm: str = "batch"):
        super().__init__()
        if len(channels) != 5 or len(blocks) != 5:
            raise ValueError("CompactDepthNet needs five stage widths and five block counts.")
        self.channels = [int(c) for c in channels]
        self.blocks = [int(b) for b in blocks]
        if out_stride not in (2, 4):
            raise ValueError("out_stride must be 2 or 4.")
        self.out_stride = int(out_stride)
        self.norm = str(norm)
        self.log_scale = math.log(depth_scale_mm)
        self.log_max = math.log(max_depth_mm)
        stages: list[nn.Module] = []
        cin = 3
        for cout, nblocks in zip(self.channels, self.blocks, strict=False):
            layers: list[nn.Module] = [conv_bn(cin, cout, stride=2, norm=norm)]
            layers += [ResidualBlock(cout, norm) for _ in range(nblocks)]
            stages.append(nn.Sequential(*layers))
            cin = cout
        self.stages = nn.ModuleList(stages)
        c = self.channels
        ups = [UpBlock(c[4], c[3], c[3], norm), UpBlock(c[3], c[2], c[2], norm), UpBlock(c[2], c[1], c[1], norm)]
        if self.out_stride == 2:
            ups.append(UpBlock(c[1], c[0], c[0], norm))
        self.up = nn.ModuleList(ups)
        self.head = nn.Conv2d(c[0] if self.out_stride == 2 else c[1], 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 1, H, W) depth in mm; H and W multiples of 32."""
        size = x.shape[-2:]
        feats: list[torch.Tensor] = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        y = feats[4]
        i = 0
        for up in self.up:
            y = up(y, feats[3 - i])
            i += 1
        # y is at 1/2 (out_stride 2) or 1/4 resolution
        log_depth = self.head(y) + self.log_scale
        log_depth = F.interpolate(log_depth, size=size, mode="bilinear", align_corners=False)
        return torch.exp(torch.clamp(log_depth, max=self.log_max))

    def hyper_parameters(self) -> dict[str, object]:
        return {"channels": self.channels, "blocks": self.blocks, "depth_scale_mm": round(math.exp(self.log_scale), 6),
                "max_depth_mm": round(math.exp(self.log_max), 6), "out_stride": self.out_stride, "norm": self.norm}


# the shipped size: 2.2 M parameters, 0.5 G multiply-accumulates at 256x320. Group norm: with batch
# norm and CPU-sized batches (4-8) the batch statistics move the predicted global scale from batch to
# batch; the same network overfits 8 frames to AbsRel 0.09 with batch norm and 0.02 with group norm.
DEFAULT_HYPER = {"channels": (16, 24, 48, 96, 192), "blocks": (0, 0, 1, 2, 2), "out_stride": 4, "norm": "group"}


def build_depth_network(hyper: dict[str, object] | None = None) -> CompactDepthNet:
    hyper = dict(DEFAULT_HYPER if hyper is None else hyper)
    return CompactDepthNet(channels=hyper.get("channels", DEFAULT_HYPER["channels"]),
                           blocks=hyper.get("blocks", DEFAULT_HYPER["blocks"]),
                           depth_scale_mm=float(hyper.get("depth_scale_mm", 50.0)),
                           max_depth_mm=float(hyper.get("max_depth_mm", 300.0)),
                           out_stride=int(hyper.get("out_stride", DEFAULT_HYPER["out_stride"])),
                           # "batch": model folders written before the normalisation was a choice
                           norm=str(hyper.get("norm", "batch")))


def count_macs(model: nn.Module, height: int = 256, width: int = 320) -> int:
    """Multiply-accumulates of convolutions and linear layers for one (1, 3, H, W) forward pass."""
    total = [0]

    def hook(module, inputs, output):
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            total[0] += output.numel() * k
        elif isinstance(module, nn.Linear):
            total[0] += output.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, height, width))
    finally:
        for h in handles:
            h.remove()
    return total[0]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
