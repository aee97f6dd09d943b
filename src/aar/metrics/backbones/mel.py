"""The weight-free default backbone: statistics of log-mel frames.

Its FAD-style numbers are only comparable between runs of this tool, never with published FADs
(which use VGGish or another trained network).

Front end: 16 kHz, :class:`aar.audio.spectral.MelSpectrogram` with a 400-sample (25 ms) window,
hop 160 (10 ms), 512-point FFT, 64 Slaney mel bands, ``log10(max(power, 1e-5))``. Embedding: for
each non-overlapping 0.96 s segment (96 frames; the whole clip when shorter), the per-band mean
and standard deviation over time, concatenated: 128-d. Clips under 512 samples are zero-padded.
"""

from __future__ import annotations

import torch

from aar.audio.spectral import MelSpectrogram
from aar.metrics.backbones.base import Backbone, BackboneOutput

SEGMENT_FRAMES = 96
MIN_SAMPLES = 512


class LogMelStatistics(Backbone):
    """``forward(Tensor[B x T] at 16 kHz)`` -> ``embeddings`` ``[B x N x 128]``, one per 0.96 s segment."""

    name = "mel"
    sample_rate = 16_000
    embedding_dim = 128
    comparable = False
    weights = "none (log-mel statistics)"

    def __init__(self):
        super().__init__()
        self.mel = MelSpectrogram(
            sample_rate=self.sample_rate, n_fft=512, hop_length=160, win_length=400, n_mels=64, center=True
        )

    def forward(self, wav: torch.Tensor) -> BackboneOutput:
        wav = wav.float()
        if wav.shape[-1] < MIN_SAMPLES:  # the centred, reflection-padded STFT needs one full window
            wav = torch.nn.functional.pad(wav, (0, MIN_SAMPLES - wav.shape[-1]))
        log_mel = self.mel(wav)  # [B x 64 x frames]
        frames = log_mel.shape[-1]
        count = max(1, frames // SEGMENT_FRAMES)
        length = count * SEGMENT_FRAMES if frames >= SEGMENT_FRAMES else frames
        segments = log_mel[..., :length].reshape(log_mel.shape[0], log_mel.shape[1], count, -1)
        mean, std = segments.mean(dim=-1), segments.std(dim=-1, unbiased=False)
        return BackboneOutput(embeddings=torch.cat([mean, std], dim=1).transpose(1, 2))
