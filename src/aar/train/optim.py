"""Optimisers with linear warm-up + cosine decay, gradient clipping and gradient accumulation.

The learning rate is a pure function of the optimisation step, so restoring the step restores
the schedule exactly; an :class:`Optimization` saves only its optimiser state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
import torch
from torch import nn

OPTIMIZERS = ("adam", "adamw")


@dataclass
class OptimConfig:
    """Optimiser and schedule. Warm-up is given in steps or (with a known epoch size) epochs."""

    name: str = "adam"
    lr: float = 3e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    weight_decay: float = 0.0
    warmup_steps: int | None = None
    warmup_epochs: float | None = None
    min_lr_ratio: float = 0.0  # the cosine ends at lr * min_lr_ratio
    clip_grad: float | None = 1.0  # max global grad norm; None or <= 0 disables clipping

    def __post_init__(self):
        if self.name not in OPTIMIZERS:
            raise ValueError(f"optim.name must be one of {OPTIMIZERS}, got {self.name!r}")
        if self.lr <= 0:
            raise ValueError(f"optim.lr must be positive, got {self.lr}")
        if len(self.betas) != 2:
            raise ValueError(f"optim.betas must hold two numbers, got {self.betas}")
        if self.warmup_steps is not None and self.warmup_epochs is not None:
            raise ValueError("give optim.warmup_steps or optim.warmup_epochs, not both")


def lr_factor(step: int, total_steps: int, warmup_steps: int, min_ratio: float = 0.0) -> float:
    """Multiplier of the peak learning rate at ``step`` (0-based): linear warm-up from
    ``1 / warmup_steps`` to 1, then half a cosine down to ``min_ratio`` at ``total_steps - 1``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - 1 - warmup_steps)
    progress = min(1.0, max(0.0, (step - warmup_steps) / span))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def param_groups(module: nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices and kernels only: biases, norms' gains and other 1-D parameters get none, nor
    do the parameters a module lists in its ``no_weight_decay()`` (names, as timm models do)."""
    skip = set(module.no_weight_decay()) if hasattr(module, "no_weight_decay") else set()
    decay, keep = [], []
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        (keep if p.ndim <= 1 or name.endswith("bias") or name in skip else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if keep:
        groups.append({"params": keep, "weight_decay": 0.0})
    return groups


class Optimization:
    """One optimiser over ``module``'s parameters with its schedule and clipping.

    Call ``zero_grad()``, accumulate gradients (scale each micro-batch loss by ``1 / n``), then
    ``step(global_step)``, which sets the learning rate for that step, clips and updates.
    """

    def __init__(self, module: nn.Module, cfg: OptimConfig, total_steps: int, warmup_steps: int):
        self.cfg = cfg
        self.total_steps, self.warmup_steps = total_steps, warmup_steps
        self.params = [p for p in module.parameters() if p.requires_grad]
        groups = param_groups(module, cfg.weight_decay)
        kwargs = dict(lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)
        if cfg.name == "adamw":
            self.optimizer = torch.optim.AdamW(groups, **kwargs)
        else:
            self.optimizer = torch.optim.Adam(groups, **kwargs)

    def lr_at(self, step: int) -> float:
        return self.cfg.lr * lr_factor(step, self.total_steps, self.warmup_steps, self.cfg.min_lr_ratio)

    def zero_grad(self):
        self.optimizer.zero_grad(set_to_none=True)

    def step(self, step: int, skip: bool = False) -> dict[str, float]:
        """Update with the learning rate of ``step``; returns ``{"lr", "grad_norm"}``.

        When ``skip`` is set (the caller saw a non-finite loss) or the gradients' global norm is NaN
        or infinite, the gradients are dropped and nothing changes: neither the weights nor the
        optimiser's moments. The stats then hold ``"skipped": 1.0``. The norm is the same on every
        process under DDP (gradients are already reduced), so all skip together."""
        lr = self.lr_at(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        stats = {"lr": lr}
        clip = self.cfg.clip_grad is not None and self.cfg.clip_grad > 0
        grads = [p.grad for p in self.params if p.grad is not None]
        if clip:
            norm = torch.nn.utils.clip_grad_norm_(self.params, self.cfg.clip_grad)
        else:
            norm = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())
        norm = float(norm)
        if clip:
            stats["grad_norm"] = norm
        if skip or not math.isfinite(norm):
            stats["skipped"] = 1.0
        else:
            self.optimizer.step()
        self.zero_grad()
        return stats

    def state_dict(self) -> dict:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict):
        self.optimizer.load_state_dict(state)


def steps_from_epochs(epochs: float, epoch_size: int | None, global_batch: int, what: str) -> int:
    """Optimisation steps in ``epochs`` passes over ``epoch_size`` samples."""
    if epoch_size is None:
        raise ValueError(
            f"{what} is given in epochs but the epoch size is unknown (streaming shards): "
            "set data.epoch_size or give it in steps"
        )
    return max(1, int(round(epochs * epoch_size / global_batch)))

