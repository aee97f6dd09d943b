"""Transformer building blocks shared by the next-scale model and any next-token baseline:
a key/value cache, self-attention, the MLP, the adaptive-LayerNorm block and the final
AdaLN head. Activations are ``Tensor[B x L x C]``; attention works on ``[B x H x L x head_dim]``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from aar.transformer.fast_linear import linear

# Cosine attention caps the learned per-head logit scale at 100 (log-space clamp).
_MAX_LOG_SCALE = math.log(100.0)


class KVCache:
    """Keys and values of one attention layer, preallocated as ``[B x H x max_len x head_dim]``
    so that appending a step writes in place instead of concatenating."""

    def __init__(
        self,
        batch: int,
        num_heads: int,
        max_len: int,
        head_dim: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        shape = (batch, num_heads, max_len, head_dim)
        self.keys = torch.empty(shape, device=device, dtype=dtype)
        self.values = torch.empty(shape, device=device, dtype=dtype)
        self.length = 0

    @property
    def max_len(self) -> int:
        return self.keys.shape[2]

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``[B x H x n x head_dim]`` new keys/values; returns every key/value so far
        (views ``[B x H x length x head_dim]``)."""
        end = self.length + k.shape[2]
        if end > self.max_len:
            raise RuntimeError(f"KV cache overflow: {end} positions, capacity {self.max_len}")
        self.keys[:, :, self.length : end] = k
        self.values[:, :, self.length : end] = v
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]

    def reset(self) -> None:
        self.length = 0


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero whole samples of a residual branch with probability ``p``
    (the rest scaled by ``1 / (1 - p)``)."""
    if p == 0.0 or not training:
        return x
    keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1.0 - p)
    return x * keep / (1.0 - p)


class SelfAttention(nn.Module):
    """Multi-head self-attention through ``F.scaled_dot_product_attention``.

    The qkv projection has no bias of its own; learned biases are added to q and v only.
    With ``cos_attn`` q and k are L2-normalised and q is multiplied by a learned per-head
    scale ``exp(min(log_scale, log 100))`` (``log_scale`` starts at log 4); otherwise the
    logits are scaled by ``1 / (sqrt(head_dim) * tau)``.
    """

    def __init__(self, width: int, num_heads: int, cos_attn: bool = True, tau: float = 4.0):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, width // num_heads
        self.cos_attn = cos_attn
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(width))
        self.v_bias = nn.Parameter(torch.zeros(width))
        if cos_attn:
            self.log_scale = nn.Parameter(torch.full((1, num_heads, 1, 1), math.log(4.0)))
            self.scale = 1.0
        else:
            self.scale = 1.0 / math.sqrt(self.head_dim) / tau
        self.proj = nn.Linear(width, width)

    def qkv_bias(self) -> torch.Tensor:
        return torch.cat((self.q_bias, torch.zeros_like(self.q_bias), self.v_bias))

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        """``x``: ``[B x L x C]``; ``attn_mask``: bool ``[L x L_keys]`` (True = may attend) or
        None; with ``cache`` the new keys/values are appended and attention covers all cached
        positions. Returns ``[B x L x C]``."""
        b, n, c = x.shape
        qkv = linear(x, self.qkv, self.qkv_bias()).view(b, n, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        if self.cos_attn:
            q = F.normalize(q, dim=-1) * self.log_scale.clamp_max(_MAX_LOG_SCALE).exp()
            k = F.normalize(k, dim=-1)
        if cache is not None:
            k, v = cache.append(k.to(cache.keys.dtype), v.to(cache.values.dtype))
            q = q.to(k.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=self.scale)
        return linear(out.transpose(1, 2).reshape(b, n, c), self.proj)


class FeedForward(nn.Module):
    """``fc2(gelu_tanh(fc1(x)))`` with ``hidden = mlp_ratio * width``."""

    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(linear(x, self.fc1, gelu=True), self.fc2)


class AdaLNBlock(nn.Module):
    """Pre-norm transformer block whose LayerNorms are modulated by a condition.

    From the condition ``[B x D]``, ``SiLU + Linear`` gives six vectors (gamma1, gamma2,
    scale1, scale2, shift1, shift2); then
    ``x += gamma1 * attn(LN(x) * (1 + scale1) + shift1)`` and the same for the MLP.
    The modulation depends only on the condition, so it is computed once per sequence
    (:meth:`modulation`) and passed to :meth:`forward`.
    """

    def __init__(
        self,
        width: int,
        cond_width: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        cos_attn: bool = True,
        attn_tau: float = 4.0,
        norm_eps: float = 1e-6,
        drop_path: float = 0.0,
    ):
        super().__init__()
        self.width = width
        self.drop_path = drop_path
        self.norm = nn.LayerNorm(width, eps=norm_eps, elementwise_affine=False)
        self.attn = SelfAttention(width, num_heads, cos_attn, attn_tau)
        self.mlp = FeedForward(width, round(width * mlp_ratio))
        self.adaln = nn.Linear(cond_width, 6 * width)

    def modulation(self, cond: torch.Tensor) -> torch.Tensor:
        """Condition ``[B x D]`` -> modulation ``[B x 1 x 6 x C]``."""
        return self.adaln(F.silu(cond)).view(-1, 1, 6, self.width)

    def forward(
        self,
        x: torch.Tensor,
        modulation: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        """``x`` ``[B x L x C]``, ``modulation`` ``[B x 1 x 6 x C]`` -> ``[B x L x C]``."""
        gamma1, gamma2, scale1, scale2, shift1, shift2 = modulation.unbind(2)
        h = self.attn(torch.addcmul(shift1, self.norm(x), scale1 + 1), attn_mask, cache)
        x = x + drop_path(h * gamma1, self.drop_path, self.training)
        h = self.mlp(torch.addcmul(shift2, self.norm(x), scale2 + 1))
        return x + drop_path(h * gamma2, self.drop_path, self.training)


class AdaLNHead(nn.Module):
    """Final adaptive LayerNorm (scale, shift from the condition) and the linear classifier."""

    def __init__(self, width: int, cond_width: int, vocab_size: int, norm_eps: float = 1e-6):
        super().__init__()
        self.width = width
        self.norm = nn.LayerNorm(width, eps=norm_eps, elementwise_affine=False)
        self.adaln = nn.Linear(cond_width, 2 * width)
        self.out = nn.Linear(width, vocab_size)

    def modulation(self, cond: torch.Tensor) -> torch.Tensor:
        """Condition ``[B x D]`` -> ``[B x 1 x 2 x C]`` (scale, shift)."""
        return self.adaln(F.silu(cond)).view(-1, 1, 2, self.width)

    def forward(self, x: torch.Tensor, modulation: torch.Tensor) -> torch.Tensor:
        """``[B x L x C]`` -> logits ``[B x L x V]``."""
        scale, shift = modulation.unbind(2)
        return linear(torch.addcmul(shift, self.norm(x), scale + 1), self.out)
