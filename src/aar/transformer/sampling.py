"""Token sampling shared by every generator: classifier-free guidance and top-k / top-p
sampling of a whole step's tokens at once."""

from __future__ import annotations

import torch


def guided_logits(cond_logits: torch.Tensor, uncond_logits: torch.Tensor, strength: float) -> torch.Tensor:
    """Classifier-free guidance: ``(1 + t) * cond - t * uncond``."""
    return (1.0 + strength) * cond_logits - strength * uncond_logits


GUIDANCE_SCHEDULES = ("linear", "constant")


def check_guidance_schedule(schedule: str, name: str = "cfg_schedule") -> str:
    """``schedule`` if it is one of ``GUIDANCE_SCHEDULES``; otherwise a ValueError naming ``name``."""
    if schedule not in GUIDANCE_SCHEDULES:
        raise ValueError(f"{name} must be one of {', '.join(GUIDANCE_SCHEDULES)}; got {schedule!r}")
    return schedule


def guidance_ramp(cfg: float, step: int, num_steps: int, schedule: str = "linear") -> float:
    """Guidance strength at ``step`` (0-based) of ``num_steps``.

    ``"linear"`` (the release's and VAR's): ``cfg * step / (num_steps - 1)``, rising from 0 at
    the first step to ``cfg`` at the last. ``"constant"``: ``cfg`` at every step, so the
    coarsest scales, which fix a clip's overall character, are guided too.
    """
    if check_guidance_schedule(schedule, "guidance schedule") == "constant" or num_steps <= 1:
        return float(cfg)
    return cfg * step / (num_steps - 1)


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 0.0) -> torch.Tensor:
    """Set to -inf every logit outside the ``top_k`` largest (0: no limit) and, of those left,
    outside the smallest set whose probability reaches ``top_p`` (0 or >= 1: no limit).
    ``[... x V]`` -> ``[... x V]`` (a new tensor)."""
    vocab = logits.shape[-1]
    if 0 < top_k < vocab:
        kth = logits.topk(top_k, dim=-1, sorted=False).values.amin(dim=-1, keepdim=True)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if 0.0 < top_p < 1.0:
        ascending, order = logits.sort(dim=-1)
        drop_sorted = ascending.softmax(dim=-1).cumsum(dim=-1) <= 1.0 - top_p
        drop_sorted[..., -1] = False  # always keep the most likely token
        logits = logits.masked_fill(drop_sorted.scatter(-1, order, drop_sorted), float("-inf"))
    return logits


def sample_tokens(
    logits: torch.Tensor,
    top_k: int = 0,
    top_p: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw one token per position: ``[B x l x V]`` logits -> ``LongTensor[B x l]``.

    ``top_k = 1`` is greedy (argmax, no randomness). Otherwise the filtered softmax is
    sampled with ``torch.multinomial`` driven by ``generator``, all positions in one call,
    so a seeded generator reproduces the draw exactly.
    """
    if top_k < 0 or not 0.0 <= top_p:
        raise ValueError(f"top_k must be >= 0 and top_p >= 0, got top_k={top_k}, top_p={top_p}")
    if top_k == 1:
        return logits.argmax(dim=-1)
    probs = filter_logits(logits.float(), top_k, top_p).softmax(dim=-1)
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat, 1, replacement=True, generator=generator).view(probs.shape[:-1])
