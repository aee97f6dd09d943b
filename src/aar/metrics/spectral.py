"""Multi-resolution spectral distances between paired clips: MEL distance and STFT distance.

Both follow the conventions of the codec literature (the DAC evaluation set-up, also used by the
codec tables the paper compares with), computed on mono clips at one sample rate (24 kHz in
``aar evaluate``). Every resolution uses a periodic Hann window of ``w`` samples, FFT size ``w``,
hop ``w // 4`` and centred, reflection-padded frames; ``|X_w|`` is the STFT magnitude.

MEL distance (7 resolutions, ``w`` = 32, 64, 128, 256, 512, 1024, 2048 with 5, 10, 20, 40, 80,
160, 320 mel bands; Slaney mel filters from 0 Hz to Nyquist applied to the magnitude)::

    D_mel(x, y) = sum_w mean | log10(max(M_w x, 1e-5)) - log10(max(M_w y, 1e-5)) |

STFT distance (2 resolutions, ``w`` = 2048, 512)::

    D_stft(x, y) = sum_w [ mean | log10(max(|X_w|, 1e-5)^2) - log10(max(|Y_w|, 1e-5)^2) |
                           + mean | |X_w| - |Y_w| | ]

The means run over frequency bins and frames of one clip; a set's figure is the mean over pairs.
"""

from __future__ import annotations

import torch
from torch import nn

from aar.audio.spectral import mel_filterbank, stft

MEL_WINDOWS = (32, 64, 128, 256, 512, 1024, 2048)
MEL_BANDS = (5, 10, 20, 40, 80, 160, 320)
STFT_WINDOWS = (2048, 512)
CLAMP = 1e-5


def _as_batch(wav: torch.Tensor) -> torch.Tensor:
    if wav.dim() == 3:
        wav = wav.squeeze(1)
    if wav.dim() == 1:
        wav = wav.unsqueeze(0)
    if wav.dim() != 2:
        raise ValueError(f"expected audio as [T], [B x T] or [B x 1 x T], got shape {tuple(wav.shape)}")
    return wav.float()


def _check_pair(estimate: torch.Tensor, reference: torch.Tensor, longest_window: int) -> None:
    if estimate.shape != reference.shape:
        raise ValueError(f"paired clips must have the same shape, got {tuple(estimate.shape)} and {tuple(reference.shape)}")
    if estimate.shape[-1] <= longest_window // 2:
        raise ValueError(
            f"clips of {estimate.shape[-1]} samples are too short for a {longest_window}-sample window "
            f"(need at least {longest_window // 2 + 1})"
        )


def _magnitude(wav: torch.Tensor, window: int) -> torch.Tensor:
    return stft(wav, n_fft=window, hop_length=window // 4, center=True, pad_mode="reflect").abs()


class MelDistance(nn.Module):
    """Multi-resolution log-mel L1 distance (formula in the module docstring).

    ``forward(estimate, reference)`` takes ``Tensor[B x T]`` or ``Tensor[B x 1 x T]`` (same shape)
    and returns ``Tensor[B]``, one distance per pair.
    """

    def __init__(self, sample_rate: int = 24_000, windows=MEL_WINDOWS, bands=MEL_BANDS, clamp: float = CLAMP):
        super().__init__()
        if len(windows) != len(bands):
            raise ValueError("one mel band count per window length is needed")
        self.windows = tuple(windows)
        self.clamp = clamp
        for i, (window, n_mels) in enumerate(zip(self.windows, bands)):
            self.register_buffer(f"filters{i}", mel_filterbank(sample_rate, window, n_mels), persistent=False)

    def forward(self, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        estimate, reference = _as_batch(estimate), _as_batch(reference)
        _check_pair(estimate, reference, max(self.windows))
        total = estimate.new_zeros(estimate.shape[0])
        for i, window in enumerate(self.windows):
            filters = getattr(self, f"filters{i}")
            mel_est = torch.matmul(filters, _magnitude(estimate, window)).clamp(min=self.clamp).log10()
            mel_ref = torch.matmul(filters, _magnitude(reference, window)).clamp(min=self.clamp).log10()
            total = total + (mel_est - mel_ref).abs().mean(dim=(1, 2))
        return total


class STFTDistance(nn.Module):
    """Multi-resolution STFT distance: log-power L1 plus magnitude L1 (formula in the module docstring).

    ``forward(estimate, reference)`` takes ``Tensor[B x T]`` or ``Tensor[B x 1 x T]`` (same shape)
    and returns ``Tensor[B]``.
    """

    def __init__(self, windows=STFT_WINDOWS, clamp: float = CLAMP):
        super().__init__()
        self.windows = tuple(windows)
        self.clamp = clamp

    def forward(self, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        estimate, reference = _as_batch(estimate), _as_batch(reference)
        _check_pair(estimate, reference, max(self.windows))
        total = estimate.new_zeros(estimate.shape[0])
        for window in self.windows:
            mag_est, mag_ref = _magnitude(estimate, window), _magnitude(reference, window)
            log_est = mag_est.clamp(min=self.clamp).pow(2).log10()
            log_ref = mag_ref.clamp(min=self.clamp).pow(2).log10()
            total = total + (log_est - log_ref).abs().mean(dim=(1, 2)) + (mag_est - mag_ref).abs().mean(dim=(1, 2))
        return total


@torch.inference_mode()
def mel_distance(estimate: torch.Tensor, reference: torch.Tensor, sample_rate: int = 24_000) -> torch.Tensor:
    """MEL distance per pair, ``Tensor[B]``; see :class:`MelDistance`."""
    return MelDistance(sample_rate).to(estimate.device)(estimate, reference)


@torch.inference_mode()
def stft_distance(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """STFT distance per pair, ``Tensor[B]``; see :class:`STFTDistance`."""
    return STFTDistance().to(estimate.device)(estimate, reference)
