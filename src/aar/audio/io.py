"""The one audio loader of the project: soundfile to decode, soxr to resample.

Every command and data pipeline reads audio through :func:`load_audio`, so formats,
resampling and error messages are the same everywhere.
"""

from __future__ import annotations

import io
import os
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif")


# Float files may hold any value; beyond this peak they are not audio scaled to [-1, 1] and the
# tokenizer's convolutions would overflow float32 into Inf/NaN.
MAX_PEAK = 1000.0


class AudioError(ValueError):
    """A file could not be read as audio. The message names the file."""


class NonFiniteAudioError(AudioError):
    """The file decodes, but holds NaN or infinite samples (or float samples of absurd size).

    Nothing repairs such audio silently: the message names the file, how many samples are bad and
    where the first is, so the user can fix the file at its source."""


_quiet_lock = threading.Lock()
_quiet_users = 0
_saved_stderr: int | None = None


@contextmanager
def _quiet_native_stderr():
    """Send what native decoders print to file descriptor 2 (mpg123's "Note: Illegal
    Audio-MPEG-Header ...") to /dev/null while decoding. Reference-counted, so threads decoding
    at once share one redirection; Python's own ``sys.stderr`` is flushed first."""
    global _quiet_users, _saved_stderr
    with _quiet_lock:
        if _quiet_users == 0:
            try:
                sys.stderr.flush()
            except (AttributeError, ValueError):
                pass
            _saved_stderr = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        _quiet_users += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_users -= 1
            if _quiet_users == 0 and _saved_stderr is not None:
                os.dup2(_saved_stderr, 2)
                os.close(_saved_stderr)
                _saved_stderr = None


def _looks_mpeg(head: bytes, name: str) -> bool:
    """Whether libsndfile will hand this to mpg123 (the only decoder here that prints on its own)."""
    return name.lower().endswith((".mp3", ".mp2", ".mpga")) or head[:3] == b"ID3" or (
        len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0
    )


def _decode_error(exc: Exception) -> str:
    """libsndfile's reason, without its misleading "File does not exist ... (possibly a pipe?)" for
    files it opened but could not recognise."""
    text = str(exc)
    if "possibly a pipe" in text or "Format not recognised" in text or "unknown format" in text.lower():
        return "not a recognised audio format, or corrupt"
    if text.startswith("Error opening") and ": " in text:
        text = text.split(": ", 1)[1]
    return text.strip().rstrip(".") or type(exc).__name__


def check_finite(data: np.ndarray, name: str) -> None:
    """Raise :class:`NonFiniteAudioError` unless every sample is finite and within ``MAX_PEAK``."""
    finite = np.isfinite(data)
    if not finite.all():
        bad = np.flatnonzero(~finite.all(axis=-1) if data.ndim > 1 else ~finite)
        raise NonFiniteAudioError(
            f"{name}: {int((~finite).sum())} NaN or infinite sample value(s), the first at sample {int(bad[0])}; "
            "not valid audio"
        )
    peak = float(np.abs(data).max()) if data.size else 0.0
    if peak > MAX_PEAK:
        raise NonFiniteAudioError(
            f"{name}: peak sample value {peak:.3g} (float audio is expected within [-1, 1]; over {MAX_PEAK:g} is refused)"
        )


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
        AudioError: the file is missing, empty, not a regular file, or not decodable audio.
        NonFiniteAudioError: (an :class:`AudioError`) it decodes to NaN or infinite samples, or
            float samples beyond :data:`MAX_PEAK`.
    """
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise AudioError(f"{path}: broken or looping symbolic link")
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    if not path.is_file():
        raise AudioError(f"{path}: not a regular file (a pipe, socket or device)")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file")
    return decode_audio(str(path), str(path), sample_rate, mono)


def decode_audio(source, name: str, sample_rate: int | None = 24_000, mono: bool = True) -> torch.Tensor:
    """Decode ``source`` (a path, or in-memory bytes of an audio file) like :func:`load_audio`;
    ``name`` is what error messages call it."""
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise AudioError(f"{name}: empty file")
        head = bytes(source[:4])
        source = io.BytesIO(source)
    else:
        try:
            with open(source, "rb") as fh:
                head = fh.read(4)
        except OSError as exc:
            raise AudioError(f"{name}: cannot open ({exc.strerror or exc})") from None
    try:
        if _looks_mpeg(head, name):
            with _quiet_native_stderr():
                data, sr = sf.read(source, dtype="float32", always_2d=True)
        else:
            data, sr = sf.read(source, dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types (LibsndfileError, RuntimeError, TypeError)
        raise AudioError(f"{name}: cannot decode audio ({_decode_error(exc)})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{name}: contains no samples")
    check_finite(data, name)
    if mono and data.shape[1] > 1:
        data = data.mean(axis=1, keepdims=True)
    if sample_rate is not None and sr != sample_rate:
        data = resample(data, sr, sample_rate)
        if data.ndim == 1:
            data = data[:, None]
        if data.shape[0] == 0:
            raise AudioError(f"{name}: too short to resample from {sr} Hz to {sample_rate} Hz")
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
