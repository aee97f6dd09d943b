"""HiFi-GAN style waveform discriminators, an ablation of SAT training's adversary.

The default adversary is the multi-scale STFT discriminator alone
(:class:`~aar.tokenizer.discriminator.MultiScaleSTFTDiscriminator`). ``DiscriminatorConfig.waveform``
adds either or both of

- ``multi_period``: one 2-D conv stack per period p (2, 3, 5, 7, 11), looking at the waveform
  folded into ``[B x 1 x T/p x p]`` (kernel 5 x 1, stride 3 x 1);
- ``multi_scale_waveform``: three 1-D grouped-conv stacks on the raw waveform and its 2x and 4x
  average-pooled versions.

Widths scale with ``DiscriminatorConfig.filters`` (32 = the released STFT discriminator's width;
HiFi-GAN's own widths are larger). All convs carry weight norm. :func:`build_discriminator`
returns the adversary a config asks for, with the same ``forward`` contract as the STFT
discriminator: ``Tensor[B x 1 x T]`` -> (one logits tensor per sub-discriminator, one list of
feature maps per sub-discriminator).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from aar.tokenizer.discriminator import DiscriminatorConfig, FeatureMaps, Logits, MultiScaleSTFTDiscriminator


class PeriodDiscriminator(nn.Module):
    """``Tensor[B x 1 x T]`` -> (logits ``[B x 1 x T'/p x p]``, 5 feature maps), T right-padded
    (reflect) to a multiple of ``period``."""

    def __init__(self, period: int, filters: int, negative_slope: float):
        super().__init__()
        self.period, self.negative_slope = period, negative_slope
        widths = [1, filters, 4 * filters, 16 * filters, 32 * filters, 32 * filters]
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(a, b, (5, 1), (3 if i < 4 else 1, 1), padding=(2, 0)))
            for i, (a, b) in enumerate(zip(widths, widths[1:]))
        )
        self.conv_post = weight_norm(nn.Conv2d(widths[-1], 1, (3, 1), padding=(1, 0)))

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, c, t = wav.shape
        pad = (-t) % self.period
        if pad:
            wav = F.pad(wav, (0, pad), mode="reflect" if pad < t else "constant")
        z = wav.float().view(b, c, -1, self.period)
        features = []
        for conv in self.convs:
            z = F.leaky_relu(conv(z), self.negative_slope)
            features.append(z)
        return self.conv_post(z), features


class WaveformScaleDiscriminator(nn.Module):
    """1-D grouped convs on the waveform: ``Tensor[B x 1 x T]`` -> (logits ``[B x 1 x T/16]``,
    7 feature maps)."""

    def __init__(self, filters: int, negative_slope: float):
        super().__init__()
        self.negative_slope = negative_slope
        c = 4 * filters
        # (in, out, kernel, stride, groups)
        layers = [
            (1, c, 15, 1, 1),
            (c, c, 41, 2, 4),
            (c, 2 * c, 41, 2, 4),
            (2 * c, 4 * c, 41, 4, 4),
            (4 * c, 8 * c, 41, 4, 4),
            (8 * c, 8 * c, 41, 1, 4),
            (8 * c, 8 * c, 5, 1, 1),
        ]
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv1d(i, o, k, s, groups=g, padding=k // 2)) for i, o, k, s, g in layers
        )
        self.conv_post = weight_norm(nn.Conv1d(8 * c, 1, 3, padding=1))

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        z = wav.float()
        features = []
        for conv in self.convs:
            z = F.leaky_relu(conv(z), self.negative_slope)
            features.append(z)
        return self.conv_post(z), features


class MultiPeriodDiscriminator(nn.Module):
    """One :class:`PeriodDiscriminator` per period in ``config.periods``."""

    def __init__(self, config: DiscriminatorConfig):
        super().__init__()
        self.discriminators = nn.ModuleList(
            PeriodDiscriminator(p, config.filters, config.negative_slope) for p in config.periods
        )

    def forward(self, wav: torch.Tensor) -> tuple[Logits, FeatureMaps]:
        outs = [d(wav) for d in self.discriminators]
        return [o[0] for o in outs], [o[1] for o in outs]


class MultiScaleWaveformDiscriminator(nn.Module):
    """Three :class:`WaveformScaleDiscriminator` on the waveform at 1x, 1/2x and 1/4x rate
    (average pooling, kernel 4, stride 2)."""

    def __init__(self, config: DiscriminatorConfig):
        super().__init__()
        self.discriminators = nn.ModuleList(
            WaveformScaleDiscriminator(config.filters, config.negative_slope) for _ in range(3)
        )

    def forward(self, wav: torch.Tensor) -> tuple[Logits, FeatureMaps]:
        logits, features = [], []
        for i, disc in enumerate(self.discriminators):
            if i:
                wav = F.avg_pool1d(wav, 4, 2, padding=2)
            logit, fmap = disc(wav)
            logits.append(logit)
            features.append(fmap)
        return logits, features


WAVEFORM_DISCRIMINATORS = {
    "multi_period": MultiPeriodDiscriminator,
    "multi_scale_waveform": MultiScaleWaveformDiscriminator,
}


class CombinedDiscriminator(nn.Module):
    """The multi-scale STFT discriminator plus the waveform discriminators named in
    ``config.waveform``; their logits and feature maps are concatenated, so the losses average
    over every sub-discriminator of every kind."""

    def __init__(self, config: DiscriminatorConfig):
        super().__init__()
        self.config = config
        self.names = ["multi_scale_stft", *config.waveform]
        self.stft = MultiScaleSTFTDiscriminator(config)
        self.waveform = nn.ModuleDict({name: WAVEFORM_DISCRIMINATORS[name](config) for name in config.waveform})

    def forward(self, wav: torch.Tensor) -> tuple[Logits, FeatureMaps]:
        logits, features = self.stft(wav)
        for disc in self.waveform.values():
            lg, fm = disc(wav)
            logits, features = logits + lg, features + fm
        return logits, features


def build_discriminator(config: DiscriminatorConfig | None = None) -> nn.Module:
    """The adversary ``config`` asks for: the multi-scale STFT discriminator alone (no
    ``waveform`` entries, the paper's setting; same module and parameter names as released), else a
    :class:`CombinedDiscriminator`. Either exposes ``names``-compatible structure via
    :func:`discriminator_names`."""
    config = config or DiscriminatorConfig()
    if not config.waveform:
        return MultiScaleSTFTDiscriminator(config)
    return CombinedDiscriminator(config)


def discriminator_names(module: nn.Module) -> list[str]:
    """The kinds of discriminator in an adversary built by :func:`build_discriminator`."""
    return list(getattr(module, "names", ["multi_scale_stft"]))
