"""Turning one decoded recording into fixed-length, loudness-normalised clips.

The steps are plain signal bookkeeping, applied to the recording as it is: trim the silence
around it, cut it into consecutive one-second windows, drop windows that are (nearly) silent,
pad a short recording with silence, and scale each clip to a common loudness. Nothing here
creates sound; every sample of a clip comes from the recording or is a zero of padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 24_000
CLIP_SAMPLES = SAMPLE_RATE  # one second

FRAME_SECONDS = 0.010  # analysis frame of the silence trimmer
FRAME = int(round(FRAME_SECONDS * SAMPLE_RATE))
TRIM_RELATIVE_DB = -40.0  # a frame is sound when it is within 40 dB of the loudest frame ...
TRIM_FLOOR_DBFS = -65.0  # ... and louder than this absolute floor
TRIM_MARGIN_SECONDS = 0.010  # kept before the first and after the last sounding frame
MIN_CONTENT_SECONDS = 0.5  # shorter recordings are skipped, not padded
MIN_SOUNDING_FRACTION = 0.5  # a window with fewer sounding frames is a pause, not a clip
TARGET_RMS_DBFS = -20.0
PEAK_CEILING_DBFS = -1.0
FADE_IN_SECONDS = 0.005  # against clicks where a window starts inside a sound
FADE_OUT_SECONDS = 0.020  # ... and where it (or a looped sample) stops inside one


@dataclass(frozen=True)
class Crop:
    """One clip cut from a recording.

    Attributes:
        audio: float32 ``[CLIP_SAMPLES]``, loudness-normalised, zero-padded when the
            recording was shorter than a clip.
        start_s: where the clip starts in the recording, in seconds.
        content_s: seconds of recorded audio in the clip (the rest is padding).
    """

    audio: np.ndarray
    start_s: float
    content_s: float


def db(x: float) -> float:
    """Amplitude ratio in decibels (``-inf`` for zero)."""
    return float(20.0 * np.log10(x)) if x > 0 else float("-inf")


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def frame_rms(wav: np.ndarray, frame: int) -> np.ndarray:
    """RMS of consecutive ``frame``-sample frames of ``wav`` ``[T]`` (last partial frame padded)."""
    n = -(-wav.size // frame)
    padded = np.zeros(n * frame, dtype=np.float64)
    padded[: wav.size] = wav
    return np.sqrt(np.mean(np.square(padded.reshape(n, frame)), axis=1))


def sounding_frames(wav: np.ndarray) -> np.ndarray:
    """Which ``FRAME_SECONDS`` frames of ``wav`` ``[T]`` carry sound: bool ``[ceil(T / frame)]``.

    A frame sounds when its RMS is within ``TRIM_RELATIVE_DB`` of the loudest frame and above
    ``TRIM_FLOOR_DBFS``.
    """
    levels = frame_rms(wav, FRAME)
    threshold = max(levels.max(initial=0.0) * 10 ** (TRIM_RELATIVE_DB / 20), 10 ** (TRIM_FLOOR_DBFS / 20))
    return levels >= threshold


def trim_silence(wav: np.ndarray) -> tuple[int, int]:
    """Bounds ``(start, stop)`` of the sounding part of ``wav`` ``[T]``; ``(0, 0)`` if all silent."""
    sounding = np.flatnonzero(sounding_frames(wav))
    if sounding.size == 0:
        return 0, 0
    margin = int(round(TRIM_MARGIN_SECONDS * SAMPLE_RATE))
    start = max(0, sounding[0] * FRAME - margin)
    stop = min(wav.size, (sounding[-1] + 1) * FRAME + margin)
    return int(start), int(stop)


def fade(clip: np.ndarray, content: int) -> np.ndarray:
    """Short linear fade-in at the start and fade-out at the end of the first ``content`` samples."""
    out = clip.copy()
    n_in = min(content, int(FADE_IN_SECONDS * SAMPLE_RATE))
    n_out = min(content, int(FADE_OUT_SECONDS * SAMPLE_RATE))
    out[:n_in] *= np.linspace(0.0, 1.0, n_in, endpoint=False, dtype=np.float32)
    out[content - n_out : content] *= np.linspace(1.0, 0.0, n_out, endpoint=False, dtype=np.float32)
    return out


def normalise_loudness(clip: np.ndarray) -> np.ndarray:
    """Scale ``clip`` to ``TARGET_RMS_DBFS`` RMS, less if its peak would pass ``PEAK_CEILING_DBFS``."""
    level = rms(clip)
    peak = float(np.abs(clip).max(initial=0.0))
    if level <= 0.0:
        return clip
    gain = min(10 ** (TARGET_RMS_DBFS / 20) / level, 10 ** (PEAK_CEILING_DBFS / 20) / peak)
    return (clip * gain).astype(np.float32)


def cut_clips(wav: np.ndarray, max_clips: int, min_content_s: float = MIN_CONTENT_SECONDS) -> list[Crop]:
    """Up to ``max_clips`` one-second clips from a mono recording ``wav`` ``[T]`` at ``SAMPLE_RATE``.

    The recording is trimmed of surrounding silence; a sounding part shorter than
    ``min_content_s`` gives no clip, one shorter than a clip gives one padded clip, a
    longer one gives consecutive non-overlapping windows from its start, skipping windows
    in which less than ``MIN_SOUNDING_FRACTION`` of the frames carry sound (pauses).
    """
    if wav.ndim != 1:
        raise ValueError(f"cut_clips expects a mono recording [T], got shape {wav.shape}")
    if min_content_s <= 0:
        raise ValueError(f"min_content_s must be positive, got {min_content_s}")
    clip_len = CLIP_SAMPLES
    start, stop = trim_silence(wav)
    body = wav[start:stop].astype(np.float32)
    if body.size < min_content_s * SAMPLE_RATE:
        return []
    if body.size < clip_len:
        clip = np.zeros(clip_len, dtype=np.float32)
        clip[: body.size] = body
        clip = fade(clip, body.size)
        return [Crop(normalise_loudness(clip), start / SAMPLE_RATE, body.size / SAMPLE_RATE)]
    sounding = sounding_frames(body)
    crops = []
    for offset in range(0, body.size - clip_len + 1, clip_len):
        if sounding[offset // FRAME : (offset + clip_len) // FRAME].mean() < MIN_SOUNDING_FRACTION:
            continue
        clip = fade(body[offset : offset + clip_len], clip_len)
        crops.append(Crop(normalise_loudness(clip), (start + offset) / SAMPLE_RATE, clip_len / SAMPLE_RATE))
        if len(crops) == max_clips:
            break
    return crops
