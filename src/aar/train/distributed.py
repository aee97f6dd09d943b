"""Process group, device and precision of a training run.

Launched by ``torchrun`` (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` in the environment, rendezvous
via ``MASTER_ADDR``/``MASTER_PORT``) the process joins the group: NCCL when it drives a CUDA
device, gloo on CPU. Launched plainly, it is a single process and nothing is initialised.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

PRECISIONS = ("auto", "bf16", "fp32")
_DDP_ARGS = set(inspect.signature(DistributedDataParallel.__init__).parameters)


@dataclass
class DistContext:
    """Where this process stands: ``rank`` of ``world_size``, its ``device`` and autocast dtype."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None
    autocast_dtype: torch.dtype | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def autocast(self):
        """bf16 autocast when the run uses it (CUDA by default), otherwise a no-op context."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def wrap(self, module: nn.Module, sync_buffers: bool = True, **ddp_kwargs) -> nn.Module:
        """``module`` on this device, in DistributedDataParallel when there are several processes.
        ``sync_buffers=False``: buffers are not broadcast from rank 0 before each forward (for
        modules that keep their buffers in sync themselves)."""
        module = module.to(self.device)
        if not self.distributed:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        if not sync_buffers:  # the argument was renamed in recent torch releases
            name = "forward_sync_buffers" if "forward_sync_buffers" in _DDP_ARGS else "broadcast_buffers"
            ddp_kwargs[name] = False
        return DistributedDataParallel(module, device_ids=ids, **ddp_kwargs)

    def barrier(self):
        if self.distributed:
            dist.barrier()

    def any(self, flag: bool) -> bool:
        """True on every process when ``flag`` is true on any (a collective: call it on all ranks)."""
        if not self.distributed:
            return bool(flag)
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def all_gather_object(self, obj: Any) -> list[Any]:
        if not self.distributed:
            return [obj]
        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=src)
        return box[0]

    def close(self):
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


def resolve_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def init_distributed(device: str | None = None, precision: str = "auto") -> DistContext:
    """Set up this process from torchrun's environment (or as a single process).

    ``device``: ``auto`` (CUDA when available), ``cpu`` or ``cuda``. ``precision``: ``auto`` (bf16
    autocast on CUDA, fp32 elsewhere), ``bf16`` or ``fp32``.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device cuda requested but CUDA is not available")
        dev = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(dev)
    backend = None
    if world_size > 1:
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    use_bf16 = precision == "bf16" or (precision == "auto" and dev.type == "cuda")
    return DistContext(rank, world_size, local_rank, dev, backend, torch.bfloat16 if use_bf16 else None)


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (or the module itself)."""
    return module.module if isinstance(module, DistributedDataParallel) else module


def no_sync(module: nn.Module, skip: bool):
    """DDP's ``no_sync()`` when ``skip`` (micro-batches before the last of an accumulation), else a no-op."""
    if skip and isinstance(module, DistributedDataParallel):
        return module.no_sync()
    return contextlib.nullcontext()
