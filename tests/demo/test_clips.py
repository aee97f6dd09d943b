"""Cutting recordings into clips: trimming, windows, pauses, padding, loudness."""

from __future__ import annotations

import numpy as np
import pytest

from aar.demo.clips import (
    CLIP_SAMPLES,
    PEAK_CEILING_DBFS,
    SAMPLE_RATE,
    TARGET_RMS_DBFS,
    cut_clips,
    db,
    normalise_loudness,
    rms,
    trim_silence,
)

SR = SAMPLE_RATE


def tone(seconds: float, freq: float = 440.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(round(seconds * SR))) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(round(seconds * SR)), dtype=np.float32)


def test_trim_silence_finds_the_sound_between_silences():
    wav = np.concatenate([silence(0.3), tone(0.4), silence(0.3)])
    start, stop = trim_silence(wav)
    assert 0.28 * SR <= start <= 0.3 * SR
    assert 0.7 * SR <= stop <= 0.72 * SR


def test_trim_silence_of_silence_is_empty():
    assert trim_silence(silence(1.0)) == (0, 0)


def test_long_recording_gives_consecutive_windows_and_skips_pauses():
    wav = np.concatenate([silence(0.2), tone(1.0), silence(1.0), tone(1.5, 660.0)])
    crops = cut_clips(wav, max_clips=5)
    # windows of the trimmed recording start at 0.2 s, 1.2 s (the pause: skipped), 2.2 s
    assert [round(c.start_s, 2) for c in crops] == pytest.approx([0.19, 2.19], abs=0.011)
    assert all(c.audio.shape == (CLIP_SAMPLES,) and c.audio.dtype == np.float32 for c in crops)
    assert all(c.content_s == 1.0 for c in crops)
    assert len(cut_clips(wav, max_clips=1)) == 1


def test_short_recording_is_padded_with_silence():
    (crop,) = cut_clips(np.concatenate([silence(0.1), tone(0.7)]), max_clips=3)
    assert crop.content_s == pytest.approx(0.7, abs=0.02)
    assert crop.audio.shape == (CLIP_SAMPLES,)
    assert np.all(crop.audio[int(0.72 * SR) :] == 0.0)
    assert rms(crop.audio[: int(0.6 * SR)]) > 0.05


def test_too_short_or_silent_recordings_give_no_clip():
    assert cut_clips(tone(0.3), max_clips=1) == []
    assert cut_clips(silence(2.0), max_clips=1) == []
    assert cut_clips(tone(2.0, amp=1e-5), max_clips=1) == []  # below the absolute floor


def test_min_content_s_drops_recordings_that_would_be_padded():
    short = np.concatenate([silence(0.1), tone(0.7)])
    assert cut_clips(short, max_clips=1, min_content_s=1.0) == []
    (crop,) = cut_clips(np.concatenate([silence(0.1), tone(1.2)]), max_clips=3, min_content_s=1.0)
    assert crop.content_s == pytest.approx(1.0) and rms(crop.audio[-int(0.1 * SR) :]) > 0.05
    with pytest.raises(ValueError, match="min_content_s"):
        cut_clips(short, max_clips=1, min_content_s=0.0)


def test_clip_is_not_invented_sound():
    wav = tone(2.0, freq=1000.0, amp=0.05)
    (crop,) = cut_clips(wav, max_clips=1)
    # apart from the short fades and a gain, the clip is the recording itself
    middle = slice(int(0.05 * SR), int(0.9 * SR))
    gain = crop.audio[middle] @ wav[middle] / (wav[middle] @ wav[middle])
    assert np.allclose(crop.audio[middle], gain * wav[middle], atol=1e-5)


def test_normalise_loudness_targets_rms():
    out = normalise_loudness(tone(1.0, amp=0.01))
    assert db(rms(out)) == pytest.approx(TARGET_RMS_DBFS, abs=0.01)


def test_normalise_loudness_keeps_peaks_under_the_ceiling():
    clicks = np.zeros(SR, dtype=np.float32)
    clicks[::4000] = 0.2
    out = normalise_loudness(clicks)
    assert db(float(np.abs(out).max())) == pytest.approx(PEAK_CEILING_DBFS, abs=0.01)
    assert db(rms(out)) < TARGET_RMS_DBFS


def test_cut_clips_rejects_multichannel_input():
    with pytest.raises(ValueError, match="mono"):
        cut_clips(np.zeros((2, SR), dtype=np.float32), max_clips=1)
