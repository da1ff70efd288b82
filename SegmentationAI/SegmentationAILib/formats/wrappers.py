"""Network adapters so that models trained elsewhere run in this extension's own inference path.

The inference path hands a network ``[n, c, k, j, i]`` patches (SimpleITK array order). nnU-Net
works on its plans' transposed axes and MONAI on ``[x, y, z]`` (= i, j, k); a 2-D nnU-Net runs
slice by slice; nnU-Net ensembles its folds by averaging logits. These adapters do exactly that
around the unchanged networks.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from SurgicalAICore.errors import ModelError


class AxisOrderedNetwork(torch.nn.Module):
    """Runs ``networks`` (averaging their logits) on the input's spatial axes taken in ``order``.

    ``order[a]`` is the k/j/i axis (0, 1, 2) that the networks see as their spatial axis ``a``. With
    ``two_d`` the networks are 2-D and see slices along their first spatial axis."""

    def __init__(self, networks: Sequence[torch.nn.Module], order: Sequence[int] = (0, 1, 2), two_d: bool = False,
                 mirror_axes: Sequence[int] = ()):
        super().__init__()
        self.networks = torch.nn.ModuleList(networks)
        self.order = [int(a) for a in order]
        self.inverse = [self.order.index(a) for a in range(3)]
        self.two_d = bool(two_d)
        # nnU-Net mirrors inside the prediction and averages logits (not probabilities): k/j/i axes here
        dims = sorted(2 + int(a) for a in mirror_axes)
        self.flips = [tuple(d for n, d in enumerate(dims) if mask >> n & 1) for mask in range(2 ** len(dims))]

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        out = None
        for network in self.networks:
            y = network(x)
            y = y[0] if isinstance(y, (list, tuple)) else y
            out = y if out is None else out + y
        return out / len(self.networks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.flips) <= 1:
            return self._oriented(x)
        out = None
        for dims in self.flips:
            y = self._oriented(torch.flip(x, dims) if dims else x)
            y = torch.flip(y, dims) if dims else y
            out = y if out is None else out + y
        return out / len(self.flips)

    def _oriented(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 1, *(2 + a for a in self.order))
        if self.two_d:
            n, c, d, h, w = x.shape
            y = self._run(x.permute(0, 2, 1, 3, 4).reshape(n * d, c, h, w))
            y = y.reshape(n, d, y.shape[1], h, w).permute(0, 2, 1, 3, 4)
        else:
            y = self._run(x)
        return y.permute(0, 1, *(2 + a for a in self.inverse)).contiguous()


def check_outputs(network: torch.nn.Module, card: dict, folder, device: torch.device) -> None:
    """One zero patch through the network: it must take the card's channels and give labels + 1 outputs."""
    patch = [int(p) for p in reversed(card["patch_size"])]
    x = torch.zeros((1, len(card["channels"]), *patch), device=device)
    with torch.no_grad():
        try:
            out = network(x)
        except Exception as error:  # any failure here means the network does not fit the input
            raise ModelError(f"Model in {folder} cannot run on a {len(card['channels'])}-channel "
                             f"{'x'.join(map(str, patch))} patch: {str(error).splitlines()[0][:200]}") from None
    expected = len(card["labels"]) + 1
    if out.ndim != 5 or out.shape[1] != expected:
        raise ModelError(f"Model in {folder} gives {out.shape[1] if out.ndim > 1 else '?'} output channels but "
                         f"{len(card['labels'])} labels are named (expected {expected}).")
