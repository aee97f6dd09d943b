"""STFT and mel spectrograms in plain torch: the one implementation used by the
tokenizer losses, the discriminator front end and the metrics.

Mel filterbanks follow librosa's defaults (Slaney mel scale, Slaney area
normalisation) unless ``htk=True`` / ``norm=None`` are asked for.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def _hz_to_mel(freq: np.ndarray, htk: bool) -> np.ndarray:
    freq = np.asarray(freq, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + freq / 700.0)
    f_sp = 200.0 / 3
    mels = freq / f_sp
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, math.log(6.4) / 27.0
    log_region = freq >= min_log_hz
    mels = np.where(log_region, min_log_mel + np.log(np.maximum(freq, 1e-10) / min_log_hz) / logstep, mels)
    return mels


def _mel_to_hz(mels: np.ndarray, htk: bool) -> np.ndarray:
    mels = np.asarray(mels, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    freqs = f_sp * mels
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, math.log(6.4) / 27.0
    log_region = mels >= min_log_mel
    return np.where(log_region, min_log_hz * np.exp(logstep * (mels - min_log_mel)), freqs)


@lru_cache(maxsize=64)
def _mel_filterbank_np(sample_rate, n_fft, n_mels, f_min, f_max, htk, norm):
    f_max = sample_rate / 2.0 if f_max is None else f_max
    fft_freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    mel_points = np.linspace(_hz_to_mel(f_min, htk), _hz_to_mel(f_max, htk), n_mels + 2)
    hz_points = _mel_to_hz(mel_points, htk)
    widths = np.diff(hz_points)
    ramps = hz_points[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if norm == "slaney":
        weights *= (2.0 / (hz_points[2:] - hz_points[:-2]))[:, None]
    elif norm is not None:
        raise ValueError(f"mel norm must be 'slaney' or None, got {norm!r}")
    return weights.astype(np.float32)


def mel_filterbank(
    sample_rate: int,
    n_fft: int,
    n_mels: int,
    f_min: float = 0.0,
    f_max: float | None = None,
    htk: bool = False,
    norm: str | None = "slaney",
) -> torch.Tensor:
    """Triangular mel filters as ``Tensor[n_mels x (n_fft // 2 + 1)]`` (librosa conventions)."""
    return torch.from_numpy(_mel_filterbank_np(sample_rate, n_fft, n_mels, float(f_min), f_max, htk, norm).copy())


def stft(
    x: torch.Tensor,
    n_fft: int,
    hop_length: int,
    win_length: int | None = None,
    center: bool = True,
    pad_mode: str = "reflect",
) -> torch.Tensor:
    """Complex STFT of ``x`` (``[..., T]``) with a periodic Hann window.

    Returns ``Tensor[..., n_fft // 2 + 1, frames]`` (complex).
    """
    win_length = n_fft if win_length is None else win_length
    shape = x.shape
    x = x.reshape(-1, shape[-1])
    window = torch.hann_window(win_length, device=x.device, dtype=x.dtype if x.is_floating_point() else torch.float32)
    spec = torch.stft(
        x,
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=win_length,
        window=window,
        center=center,
        pad_mode=pad_mode,
        return_complex=True,
    )
    return spec.reshape(*shape[:-1], *spec.shape[-2:])


class MelSpectrogram(nn.Module):
    """Mel spectrogram of ``Tensor[B x 1 x T]`` or ``Tensor[B x T]`` -> ``Tensor[B x n_mels x frames]``.

    ``power`` 2 gives a power spectrogram, 1 a magnitude one. With ``log=True`` the output is
    ``log10(max(mel, clamp))``. ``center=False`` pads ``(n_fft - hop) // 2`` samples on each side by
    reflection (the convention of the SAT frequency loss); ``center=True`` is torch's centred STFT.
    """

    filters: torch.Tensor  # buffer [n_mels x (n_fft // 2 + 1)]

    def __init__(
        self,
        sample_rate: int = 24_000,
        n_fft: int = 1024,
        hop_length: int | None = None,
        win_length: int | None = None,
        n_mels: int = 64,
        f_min: float = 0.0,
        f_max: float | None = None,
        power: float = 2.0,
        log: bool = True,
        clamp: float = 1e-5,
        center: bool = False,
        htk: bool = False,
        norm: str | None = "slaney",
    ):
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = hop_length or n_fft // 4
        self.win_length = win_length or n_fft
        self.power = power
        self.log = log
        self.clamp = clamp
        self.center = center
        self.register_buffer(
            "filters", mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max, htk=htk, norm=norm), persistent=False
        )

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        if wav.dim() == 3:
            wav = wav.squeeze(1)
        wav = wav.float()
        if not self.center:
            pad = (self.n_fft - self.hop_length) // 2
            wav = F.pad(wav.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
        spec = stft(wav, self.n_fft, self.hop_length, self.win_length, center=self.center).abs()
        if self.power != 1.0:
            spec = spec.pow(self.power)
        mel = torch.matmul(self.filters, spec)
        if self.log:
            mel = torch.log10(mel.clamp(min=self.clamp))
        return mel
