"""The one audio loader of the project: soundfile to decode, soxr to resample.

Every command and data pipeline reads audio through :func:`load_audio`, so formats,
resampling and error messages are the same everywhere.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif")


class AudioError(ValueError):
    """A file could not be read as audio. The message names the file."""


def resample(wav: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample ``wav`` (T,) or (T, C) float32 from ``sr_in`` to ``sr_out`` with soxr (high quality)."""
    if sr_in == sr_out:
        return wav
    return soxr.resample(wav, sr_in, sr_out, quality="HQ").astype(np.float32, copy=False)


def load_audio(
    path: str | os.PathLike,
    sample_rate: int | None = 24_000,
    mono: bool = True,
) -> torch.Tensor:
    """Read an audio file as float32 ``Tensor[C x T]`` (``C = 1`` when ``mono``).

    Any format libsndfile reads (wav, flac, ogg/vorbis, opus, mp3, ...). Multi-channel
    audio is averaged to mono; the result is resampled to ``sample_rate`` unless it is None.

    Raises:
        AudioError: the file is missing, empty, or not decodable audio.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file")
    return decode_audio(str(path), str(path), sample_rate, mono)


def decode_audio(source, name: str, sample_rate: int | None = 24_000, mono: bool = True) -> torch.Tensor:
    """Decode ``source`` (a path, or in-memory bytes of an audio file) like :func:`load_audio`;
    ``name`` is what error messages call it."""
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise AudioError(f"{name}: empty file")
        source = io.BytesIO(source)
    try:
        data, sr = sf.read(source, dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types (LibsndfileError, RuntimeError, TypeError)
        raise AudioError(f"{name}: cannot decode audio ({exc})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{name}: contains no samples")
    if mono and data.shape[1] > 1:
        data = data.mean(axis=1, keepdims=True)
    if sample_rate is not None and sr != sample_rate:
        data = resample(data, sr, sample_rate)
        if data.ndim == 1:
            data = data[:, None]
    return torch.from_numpy(np.ascontiguousarray(data.T))


def save_audio(path: str | os.PathLike, wav: torch.Tensor | np.ndarray, sample_rate: int = 24_000) -> Path:
    """Write ``wav`` (``[T]`` or ``[C x T]``) to ``path``; the format follows the extension.

    Samples are clipped to [-1, 1]; WAV files are written as 16-bit PCM.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(wav, torch.Tensor):
        wav = wav.detach().float().cpu().numpy()
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim == 1:
        wav = wav[None]
    if wav.ndim != 2:
        raise ValueError(f"save_audio expects [T] or [C x T], got shape {wav.shape}")
    wav = np.clip(wav, -1.0, 1.0).T
    subtype = "PCM_16" if path.suffix.lower() == ".wav" else None
    sf.write(str(path), wav, sample_rate, subtype=subtype)
    return path


def list_audio_files(root: str | os.PathLike) -> list[Path]:
    """All audio files under ``root`` (recursive, sorted), by extension."""
    root = Path(root)
    if not root.exists():
        raise AudioError(f"{root}: no such file or directory")
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
