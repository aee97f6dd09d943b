"""Multi-scale STFT discriminator (EnCodec style), the adversary of SAT training.

Each sub-discriminator looks at the complex STFT of the waveform at one resolution, real and
imaginary parts as 2 input channels laid out ``[B x 2 x frames x freq]``, through 2-D convs
(kernel 3 over time, 9 over frequency, stride 2 along frequency, dilations 1/2/4 along time)
with LeakyReLU(0.2). Module and parameter names follow the released discriminator
(``discriminators.N.convs.M.conv.weight_g`` ...), minus its frozen DFT kernels: our STFT is
:func:`aar.audio.spectral.stft`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from aar.audio.spectral import stft

Logits = list[torch.Tensor]
FeatureMaps = list[list[torch.Tensor]]


@dataclass
class DiscriminatorConfig:
    """Sizes of the multi-scale STFT discriminator; defaults are the released ones."""

    filters: int = 32
    n_ffts: list[int] = field(default_factory=lambda: [1024, 2048, 512, 256, 128])
    hop_lengths: list[int] = field(default_factory=lambda: [256, 512, 128, 64, 32])
    win_lengths: list[int] = field(default_factory=lambda: [1024, 2048, 512, 256, 128])
    kernel_size: tuple[int, int] = (3, 9)
    stride: tuple[int, int] = (1, 2)
    dilations: list[int] = field(default_factory=lambda: [1, 2, 4])
    negative_slope: float = 0.2
    # ablation: waveform discriminators added to the STFT one (aar.tokenizer.hifigan_discriminators):
    # any of "multi_period", "multi_scale_waveform"; empty = STFT only (the paper's setting)
    waveform: list[str] = field(default_factory=list)
    periods: list[int] = field(default_factory=lambda: [2, 3, 5, 7, 11])

    def __post_init__(self):
        known = ("multi_period", "multi_scale_waveform")
        self.waveform = [str(w) for w in self.waveform]
        bad = [w for w in self.waveform if w not in known]
        if bad or len(set(self.waveform)) != len(self.waveform):
            raise ValueError(f"discriminator waveform must list distinct names from {known}, got {self.waveform}")
        if not self.periods or any(int(p) < 2 for p in self.periods):
            raise ValueError(f"discriminator periods must be integers >= 2, got {self.periods}")
        if not (len(self.n_ffts) == len(self.hop_lengths) == len(self.win_lengths)) or not self.n_ffts:
            raise ValueError(
                "discriminator n_ffts, hop_lengths and win_lengths must be non-empty lists of the same length, got "
                f"{self.n_ffts}, {self.hop_lengths}, {self.win_lengths}"
            )
        if self.filters < 1:
            raise ValueError(f"discriminator filters must be positive, got {self.filters}")
        self.kernel_size = tuple(int(k) for k in self.kernel_size)
        self.stride = tuple(int(s) for s in self.stride)


class WNConv2d(nn.Module):
    """Conv2d with the classic weight-norm parametrisation (``weight_g`` ``[out x 1 x 1 x 1]``,
    ``weight_v``, ``bias``): ``weight = g * v / ||v||`` with the norm over all dims but 0."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size, stride=1, dilation=1, padding=0):
        super().__init__()
        conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, dilation=dilation, padding=padding)
        self.stride, self.dilation, self.padding = conv.stride, conv.dilation, conv.padding
        self.weight_g = nn.Parameter(conv.weight.detach().flatten(1).norm(dim=1).view(-1, 1, 1, 1).clone())
        self.weight_v = nn.Parameter(conv.weight.detach().clone())
        assert conv.bias is not None  # nn.Conv2d makes one unless told bias=False
        self.bias = nn.Parameter(conv.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.weight_v
        weight = v * (self.weight_g / v.flatten(1).norm(dim=1).view(-1, 1, 1, 1))
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation)


class _Layer(nn.Module):
    """Holds its conv as ``.conv`` so that parameter names match the released discriminator."""

    def __init__(self, in_ch, out_ch, kernel_size, stride=(1, 1), dilation=(1, 1), weight_norm=True):
        super().__init__()
        padding = tuple((k - 1) * d // 2 for k, d in zip(kernel_size, dilation))
        if weight_norm:
            self.conv = WNConv2d(in_ch, out_ch, kernel_size, stride, dilation, padding)
        else:
            self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, dilation=dilation, padding=padding)

    def forward(self, x):
        return self.conv(x)


class STFTDiscriminator(nn.Module):
    """One resolution: ``Tensor[B x 1 x T]`` -> (logits ``[B x 1 x frames x freq']``, 5 feature maps)."""

    def __init__(self, cfg: DiscriminatorConfig, n_fft: int, hop_length: int, win_length: int):
        super().__init__()
        self.n_fft, self.hop_length, self.win_length = n_fft, hop_length, win_length
        self.negative_slope = cfg.negative_slope
        k, f = cfg.kernel_size, cfg.filters
        square = (k[0], k[0])
        # The first conv carries no weight norm, as released.
        layers = [_Layer(2, f, k, weight_norm=False)]
        layers += [_Layer(f, f, k, stride=cfg.stride, dilation=(d, 1)) for d in cfg.dilations]
        layers.append(_Layer(f, f, square))
        self.convs = nn.ModuleList(layers)
        self.conv_post = _Layer(f, 1, square)

    def spectrogram(self, wav: torch.Tensor) -> torch.Tensor:
        """``Tensor[B x 1 x T]`` -> ``Tensor[B x 2 x frames x freq]`` (real, imaginary), scaled by
        ``1 / sqrt(n_fft / 2)``, without centring (the release's framing)."""
        spec = stft(wav.squeeze(1).float(), self.n_fft, self.hop_length, self.win_length, center=False)
        spec = spec.transpose(-1, -2) / (self.n_fft / 2) ** 0.5
        return torch.stack([spec.real, spec.imag], dim=1)

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        z = self.spectrogram(wav)
        features = []
        for layer in self.convs:
            z = F.leaky_relu(layer(z), self.negative_slope)
            features.append(z)
        return self.conv_post(z), features


class MultiScaleSTFTDiscriminator(nn.Module):
    """Five STFT sub-discriminators (n_fft 1024, 2048, 512, 256, 128 by default).

    ``forward(wav: Tensor[B x 1 x T])`` returns (logits: one tensor per resolution,
    feature maps: one list of 5 tensors per resolution).
    """

    def __init__(self, config: DiscriminatorConfig | None = None):
        super().__init__()
        self.config = config or DiscriminatorConfig()
        c = self.config
        self.discriminators = nn.ModuleList(
            STFTDiscriminator(c, n, h, w) for n, h, w in zip(c.n_ffts, c.hop_lengths, c.win_lengths)
        )

    def forward(self, wav: torch.Tensor) -> tuple[Logits, FeatureMaps]:
        logits, features = [], []
        for disc in self.discriminators:
            logit, fmap = disc(wav)
            logits.append(logit)
            features.append(fmap)
        return logits, features
