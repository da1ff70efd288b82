"""Data-parallel training under ``torchrun`` (DistributedDataParallel).

``torchrun --nproc_per_node=N -m surgicalai.cli train ...`` starts N copies of the same command;
torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address. Each rank then
draws its own patches (the rank is part of the sampling seed), gradients are averaged by DDP, and
only rank 0 validates and writes checkpoints, curves and the model folder. NCCL is used on GPUs,
gloo on CPUs. Without those variables everything runs in one process as usual.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def init_distributed(device_type: str) -> DistContext:
    """Join the process group torchrun set up (idempotent); a single-process context otherwise."""
    import torch.distributed as dist

    if not launched_by_torchrun():
        return DistContext()
    backend = "nccl" if device_type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, backend)


def device_for(ctx: DistContext, device: torch.device) -> torch.device:
    """Each rank takes its own GPU (``cuda:LOCAL_RANK``); CPUs are shared."""
    if ctx.enabled and device.type == "cuda":
        return torch.device("cuda", ctx.local_rank)
    return device


def wrap_model(ctx: DistContext, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    if not ctx.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") and isinstance(model.module, torch.nn.Module) else model


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        import torch.distributed as dist

        dist.barrier()


def broadcast_flag(ctx: DistContext, value: bool) -> bool:
    """Rank 0's ``value`` on every rank (e.g. 'stop now')."""
    if not ctx.enabled:
        return value
    import torch.distributed as dist

    t = torch.tensor([1 if value else 0], dtype=torch.int32)
    if ctx.backend == "nccl":
        t = t.cuda()
    dist.broadcast(t, src=0)
    return bool(t.item())


def cleanup(ctx: DistContext) -> None:
    if ctx.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def shutdown() -> None:
    """Leave the process group if this process joined one (end of a torchrun command)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
