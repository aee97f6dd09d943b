"""Decoding helpers of the data layer: audio from bytes, random crops, and the record of files
that could not be decoded."""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F

from aar.audio.io import decode_audio

log = logging.getLogger("aar.data")


def decode_bytes(data: bytes, name: str, sample_rate: int | None = 24_000) -> torch.Tensor:
    """Decode an in-memory audio file (a WebDataset field) exactly as :func:`aar.audio.load_audio`
    decodes files: ``Tensor[1 x T]``, mono, resampled with soxr."""
    return decode_audio(data, name, sample_rate)


def random_crop(wav: torch.Tensor, length: int, rng: np.random.Generator) -> torch.Tensor:
    """A random ``length``-sample window of ``Tensor[1 x T]``; shorter clips are zero-padded at the end."""
    t = wav.shape[-1]
    if t <= length:
        return F.pad(wav, (0, length - t))
    start = int(rng.integers(0, t - length + 1))
    return wav[..., start : start + length]


class FailureLog:
    """Files (or shard samples) that failed to decode: each is logged once, when first seen."""

    def __init__(self):
        self.reasons: dict[str, str] = {}

    def add(self, name: str, reason: str) -> bool:
        """Record a failure; returns True (and logs a warning) the first time ``name`` fails."""
        if name in self.reasons:
            return False
        self.reasons[name] = reason
        log.warning("skipped undecodable audio: %s", reason)
        return True

    def merge(self, reasons: dict[str, str]):
        for name, reason in reasons.items():
            self.reasons.setdefault(name, reason)

    def __len__(self) -> int:
        return len(self.reasons)

    def summary(self, limit: int = 20) -> str:
        if not self.reasons:
            return "no undecodable files"
        lines = [f"{len(self.reasons)} undecodable file(s) skipped:"]
        lines += [f"  {reason}" for reason in list(self.reasons.values())[:limit]]
        if len(self.reasons) > limit:
            lines.append(f"  ... and {len(self.reasons) - limit} more")
        return "\n".join(lines)
