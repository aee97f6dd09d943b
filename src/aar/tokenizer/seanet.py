"""SEANet encoder/decoder (the EnCodec 24 kHz pair) with weight-normalised convolutions.

Module indices inside ``encoder.model`` / ``decoder.model`` follow the released layout so
that released checkpoints map onto ours key by key (see :mod:`aar.tokenizer.official`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _fold(g: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return v * (g / v.flatten(1).norm(dim=1).view_as(g))


class _WeightNorm(nn.Module):
    """Holds ``weight_g`` / ``weight_v`` (classic weight-norm parametrisation, norm over every
    dim but 0) and a ``bias``. With autograd the weight is rebuilt on every call; without
    (inference) the folded weight and bias are cached per dtype until a parameter changes, so
    weight norm costs nothing per call and reduced-precision inference keeps fp32 masters."""

    def _init_weight_norm(self, weight: torch.Tensor, bias: torch.Tensor):
        norm = weight.detach().flatten(1).norm(dim=1).view(-1, *([1] * (weight.dim() - 1)))
        self.weight_g = nn.Parameter(norm.clone())
        self.weight_v = nn.Parameter(weight.detach().clone())
        self.bias = nn.Parameter(bias.detach().clone())
        self._cache: tuple | None = None

    def _cached(self) -> dict:
        """Inference-time derived tensors, dropped whenever a parameter changes."""
        g, v, b = self.weight_g, self.weight_v, self.bias
        key = (g._version, v._version, b._version, g.data_ptr(), v.data_ptr(), b.data_ptr(), g.device)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, {})
        return self._cache[1]

    def folded(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """``(weight, bias)`` to convolve an input of ``dtype`` with."""
        g, v = self.weight_g, self.weight_v
        if torch.is_grad_enabled() and any(p.requires_grad for p in (g, v, self.bias)):
            return _fold(g, v), self.bias
        cache = self._cached()
        if dtype not in cache:
            with torch.no_grad():
                cache[dtype] = (_fold(g.float(), v.float()).to(dtype), self.bias.to(dtype))
        return cache[dtype]

    def _apply(self, fn, recurse=True):
        self._cache = None
        return super()._apply(fn, recurse)


def _pad1d(x: torch.Tensor, left: int, right: int, mode: str) -> torch.Tensor:
    """``F.pad`` that also reflects inputs shorter than the padding (extra zeros first)."""
    if mode != "reflect":
        return F.pad(x, (left, right), mode=mode)
    length = x.shape[-1]
    extra = max(0, max(left, right) - length + 1)
    if extra:
        x = F.pad(x, (0, extra))
    out = F.pad(x, (left, right), mode="reflect")
    return out[..., : out.shape[-1] - extra] if extra else out


class WNConv1d(_WeightNorm):
    """Weight-normalised Conv1d with SEANet padding: non-causal splits ``k_eff - stride`` between
    both sides (the larger half left) plus what makes the last window full on the right;
    causal puts it all on the left."""

    def __init__(self, in_ch, out_ch, kernel_size, stride=1, dilation=1, causal=False, pad_mode="reflect"):
        super().__init__()
        conv = nn.Conv1d(in_ch, out_ch, kernel_size, stride=stride, dilation=dilation)
        self._init_weight_norm(conv.weight, conv.bias)
        self.stride, self.dilation, self.kernel_size = stride, dilation, kernel_size
        self.causal, self.pad_mode = causal, pad_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k_eff = (self.kernel_size - 1) * self.dilation + 1
        total = k_eff - self.stride
        length = x.shape[-1]
        n_frames = (length - k_eff + total) / self.stride + 1
        extra = (math.ceil(n_frames) - 1) * self.stride + (k_eff - total) - length
        if self.causal:
            x = _pad1d(x, total, extra, self.pad_mode)
        else:
            right = total // 2
            x = _pad1d(x, total - right, right + extra, self.pad_mode)
        weight, bias = self.folded(x.dtype)
        return F.conv1d(x, weight, bias, stride=self.stride, dilation=self.dilation)


class WNConvTranspose1d(_WeightNorm):
    """Weight-normalised ConvTranspose1d that trims ``kernel - stride`` samples from its output
    (non-causal: the larger half on the left; causal: all on the right).

    At inference on long inputs (and when ``kernel == 2 * stride``, as in SEANet) it runs as a
    polyphase convolution: output phase ``p`` of frame ``n`` is ``W[:, :, p]^T x[n] +
    W[:, :, p + stride]^T x[n - 1]``, i.e. one kernel-2 Conv1d with ``stride * out`` channels
    followed by an interleave; oneDNN runs that about twice as fast as the transposed conv."""

    POLYPHASE_MIN_LENGTH = 1000

    def __init__(self, in_ch, out_ch, kernel_size, stride=1, causal=False):
        super().__init__()
        conv = nn.ConvTranspose1d(in_ch, out_ch, kernel_size, stride=stride)
        self._init_weight_norm(conv.weight, conv.bias)
        self.stride, self.kernel_size, self.causal = stride, kernel_size, causal

    def _polyphase(self, x: torch.Tensor) -> torch.Tensor:
        cache, key = self._cached(), ("polyphase", x.dtype)
        if key not in cache:
            w, b = self.folded(x.dtype)
            s, (cin, cout, _) = self.stride, w.shape
            taps = torch.stack([w[:, :, s:], w[:, :, :s]], dim=-1)  # [cin, cout, s, 2]: taps x[n-1], x[n]
            cache[key] = (taps.permute(1, 2, 0, 3).reshape(cout * s, cin, 2), b.repeat_interleave(s))
        weight, bias = cache[key]
        n, _, length = x.shape
        y = F.conv1d(F.pad(x, (1, 1)), weight, bias)
        return y.view(n, -1, self.stride, length + 1).transpose(2, 3).reshape(n, -1, (length + 1) * self.stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inference = not (torch.is_grad_enabled() and self.weight_v.requires_grad)
        if inference and self.kernel_size == 2 * self.stride and x.shape[-1] >= self.POLYPHASE_MIN_LENGTH:
            y = self._polyphase(x)
        else:
            weight, bias = self.folded(x.dtype)
            y = F.conv_transpose1d(x, weight, bias, stride=self.stride)
        total = self.kernel_size - self.stride
        right = total if self.causal else total // 2
        left = total - right
        return y[..., left : y.shape[-1] - right]


class ResnetBlock(nn.Module):
    """``shortcut(x) + conv1x1(ELU(conv_k(ELU(x))))`` with a ``dim // compress`` bottleneck."""

    def __init__(self, dim, kernel_size, dilation, compress, causal, pad_mode):
        super().__init__()
        hidden = dim // compress
        self.block = nn.Sequential(
            nn.ELU(),
            WNConv1d(dim, hidden, kernel_size, dilation=dilation, causal=causal, pad_mode=pad_mode),
            nn.ELU(),
            WNConv1d(hidden, dim, 1, causal=causal, pad_mode=pad_mode),
        )
        self.shortcut = WNConv1d(dim, dim, 1, causal=causal, pad_mode=pad_mode)

    def forward(self, x):
        return self.shortcut(x) + self.block(x)


class SkipLSTM(nn.Module):
    """Multi-layer LSTM over time on ``Tensor[B x C x T]`` with a residual connection."""

    def __init__(self, dim: int, num_layers: int):
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, num_layers, batch_first=True)
        self._low_precision: tuple | None = None

    def _lstm_for(self, dtype: torch.dtype) -> nn.LSTM:
        """The LSTM itself, or (inference in another dtype) a cached copy cast to ``dtype``."""
        params = list(self.lstm.parameters())
        if dtype == params[0].dtype or torch.is_grad_enabled():
            return self.lstm
        key = (dtype, params[0].device, *(p._version for p in params), *(p.data_ptr() for p in params))
        if self._low_precision is None or self._low_precision[0] != key:
            with torch.no_grad():
                copy = nn.LSTM(self.lstm.input_size, self.lstm.hidden_size, self.lstm.num_layers, batch_first=True)
                copy.load_state_dict(self.lstm.state_dict())
                self._low_precision = (key, copy.to(device=params[0].device, dtype=dtype))
        return self._low_precision[1]

    def _apply(self, fn, recurse=True):
        self._low_precision = None
        return super()._apply(fn, recurse)

    def forward(self, x):
        x = x.transpose(1, 2)
        y, _ = self._lstm_for(x.dtype)(x)
        return (y + x).transpose(1, 2)


class SEANetEncoder(nn.Module):
    """``Tensor[B x channels x T]`` -> ``Tensor[B x dimension x ceil(T / hop)]``."""

    def __init__(self, cfg):
        super().__init__()
        nf, causal, pad = cfg.n_filters, cfg.causal, cfg.pad_mode
        layers: list[nn.Module] = [WNConv1d(cfg.channels, nf, cfg.kernel_size, causal=causal, pad_mode=pad)]
        mult = 1
        for ratio in reversed(cfg.ratios):
            for j in range(cfg.n_residual_layers):
                layers.append(
                    ResnetBlock(mult * nf, cfg.residual_kernel_size, cfg.dilation_base**j, cfg.compress, causal, pad)
                )
            layers += [nn.ELU(), WNConv1d(mult * nf, mult * nf * 2, 2 * ratio, stride=ratio, causal=causal, pad_mode=pad)]
            mult *= 2
        if cfg.lstm:
            layers.append(SkipLSTM(mult * nf, cfg.lstm))
        layers += [nn.ELU(), WNConv1d(mult * nf, cfg.dimension, cfg.last_kernel_size, causal=causal, pad_mode=pad)]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class SEANetDecoder(nn.Module):
    """``Tensor[B x dimension x F]`` -> ``Tensor[B x channels x F * hop]``."""

    def __init__(self, cfg):
        super().__init__()
        nf, causal, pad = cfg.n_filters, cfg.causal, cfg.pad_mode
        mult = 2 ** len(cfg.ratios)
        layers: list[nn.Module] = [WNConv1d(cfg.dimension, mult * nf, cfg.kernel_size, causal=causal, pad_mode=pad)]
        if cfg.lstm:
            layers.append(SkipLSTM(mult * nf, cfg.lstm))
        for ratio in cfg.ratios:
            layers += [nn.ELU(), WNConvTranspose1d(mult * nf, mult * nf // 2, 2 * ratio, stride=ratio, causal=causal)]
            for j in range(cfg.n_residual_layers):
                layers.append(
                    ResnetBlock(mult * nf // 2, cfg.residual_kernel_size, cfg.dilation_base**j, cfg.compress, causal, pad)
                )
            mult //= 2
        layers += [nn.ELU(), WNConv1d(nf, cfg.channels, cfg.last_kernel_size, causal=causal, pad_mode=pad)]
        self.model = nn.Sequential(*layers)

    def forward(self, z):
        return self.model(z)
