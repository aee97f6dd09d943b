"""SAT training losses (weights as released) and the spectral distances used for validation.

Generator: ``3 * adv + 3 * feat + 0.1 * time + freq + commit`` where

- ``time``: L1 between waveforms;
- ``freq``: sum over n_fft = 2^5 .. 2^11 (hop n_fft / 4, 64 mel bands, uncentred frames,
  ``log10(max(mel_power, 1e-5))``) of L1 + L2 between the two log-mel spectrograms;
- ``adv``: hinge, ``mean(relu(1 - D(x_hat)))`` averaged over sub-discriminators;
- ``feat``: ``mean|D_l(x) - D_l(x_hat)| / mean|D_l(x)|`` averaged over sub-discriminators and layers;
- ``commit``: the quantizer's commitment loss (returned by ``SAT.forward``).

Discriminator: hinge ``mean(relu(1 - D(x))) + mean(relu(1 + D(x_hat)))`` averaged over
sub-discriminators. All spectra come from :mod:`aar.audio.spectral`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from aar.audio.spectral import MelSpectrogram, stft


@dataclass
class LossWeights:
    """Weights of the generator loss terms (released values)."""

    adversarial: float = 3.0
    feature: float = 3.0
    time: float = 0.1
    frequency: float = 1.0
    commitment: float = 1.0


class MultiScaleMelLoss(nn.Module):
    """Sum over ``n_fft`` in ``2**lo .. 2**hi`` of ``L1 + L2`` between log-mel spectrograms of
    ``Tensor[B x 1 x T]`` waveforms (the release's frequency loss)."""

    def __init__(self, sample_rate: int = 24_000, n_mels: int = 64, lo: int = 5, hi: int = 11):
        super().__init__()
        self.mels = nn.ModuleList(
            MelSpectrogram(sample_rate, n_fft=2**i, hop_length=2**i // 4, n_mels=n_mels, center=False, clamp=1e-5)
            for i in range(lo, hi + 1)
        )

    def forward(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        total = real.new_zeros((), dtype=torch.float32)
        for mel in self.mels:
            a, b = mel(real), mel(fake)
            total = total + F.l1_loss(b, a) + F.mse_loss(b, a)
        return total


def adversarial_loss(logits_fake: list[torch.Tensor]) -> torch.Tensor:
    """Hinge generator loss ``mean_k mean(relu(1 - D_k(x_hat)))``."""
    return torch.stack([F.relu(1 - lf.float()).mean() for lf in logits_fake]).mean()


def feature_matching_loss(features_real: list[list[torch.Tensor]], features_fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """Relative feature matching, averaged over sub-discriminators and layers; the real features
    are constants (detached)."""
    terms = []
    for layers_real, layers_fake in zip(features_real, features_fake):
        for r, f in zip(layers_real, layers_fake):
            r = r.detach().float()
            terms.append((r - f.float()).abs().mean() / r.abs().mean().clamp(min=1e-8))
    return torch.stack(terms).mean()


def discriminator_loss(logits_real: list[torch.Tensor], logits_fake: list[torch.Tensor]) -> torch.Tensor:
    """Hinge discriminator loss ``mean_k [mean(relu(1 - D_k(x))) + mean(relu(1 + D_k(x_hat)))]``."""
    return torch.stack(
        [F.relu(1 - lr.float()).mean() + F.relu(1 + lf.float()).mean() for lr, lf in zip(logits_real, logits_fake)]
    ).mean()


class GeneratorLoss(nn.Module):
    """The weighted generator objective. ``forward`` returns the total and its named parts
    (unweighted, detached) for logging."""

    def __init__(self, weights: LossWeights | None = None, sample_rate: int = 24_000):
        super().__init__()
        self.weights = weights or LossWeights()
        self.mel = MultiScaleMelLoss(sample_rate)

    def forward(
        self,
        real: torch.Tensor,
        fake: torch.Tensor,
        commit: torch.Tensor,
        logits_fake: list[torch.Tensor] | None = None,
        features_real: list[list[torch.Tensor]] | None = None,
        features_fake: list[list[torch.Tensor]] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``real``/``fake``: ``Tensor[B x 1 x T]``. Without discriminator outputs only the
        reconstruction terms are used (e.g. for validation)."""
        w = self.weights
        fake32 = fake.float()
        parts = {
            "time": F.l1_loss(fake32, real.float()),
            "freq": self.mel(real, fake32),
            "commit": commit.float(),
        }
        total = w.time * parts["time"] + w.frequency * parts["freq"] + w.commitment * parts["commit"]
        if logits_fake is not None:
            if features_real is None or features_fake is None:
                raise ValueError("logits_fake needs features_real and features_fake (the feature-matching term)")
            parts["adv"] = adversarial_loss(logits_fake)
            parts["feat"] = feature_matching_loss(features_real, features_fake)
            total = total + w.adversarial * parts["adv"] + w.feature * parts["feat"]
        return total, {k: v.detach() for k, v in parts.items()}


# ---------------------------------------------------------------- validation distances
MEL_DISTANCE_FFTS = tuple(2**i for i in range(5, 12))
STFT_DISTANCE_FFTS = (512, 1024, 2048)


@torch.no_grad()
def mel_distance(real: torch.Tensor, fake: torch.Tensor, sample_rate: int = 24_000, n_mels: int = 64) -> torch.Tensor:
    """Mean over n_fft = 2^5 .. 2^11 (hop n_fft / 4) of the L1 distance between
    ``log10(max(mel_power, 1e-5))`` spectrograms, per clip: ``[B x 1 x T]`` pair -> ``Tensor[B]``."""
    out = []
    for n_fft in MEL_DISTANCE_FFTS:
        mel = MelSpectrogram(sample_rate, n_fft=n_fft, hop_length=n_fft // 4, n_mels=n_mels, center=False).to(real.device)
        out.append((mel(real) - mel(fake.float())).abs().mean(dim=(1, 2)))
    return torch.stack(out).mean(0)


@torch.no_grad()
def stft_distance(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Mean over n_fft in (512, 1024, 2048) (hop n_fft / 4, Hann) of the L1 distance between
    ``log10(max(|STFT|, 1e-5))`` magnitudes, per clip: ``[B x 1 x T]`` pair -> ``Tensor[B]``."""
    out = []
    for n_fft in STFT_DISTANCE_FFTS:
        a = stft(real.squeeze(1).float(), n_fft, n_fft // 4).abs().clamp(min=1e-5).log10()
        b = stft(fake.squeeze(1).float(), n_fft, n_fft // 4).abs().clamp(min=1e-5).log10()
        out.append((a - b).abs().mean(dim=(1, 2)))
    return torch.stack(out).mean(0)
