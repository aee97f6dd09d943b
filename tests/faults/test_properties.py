"""Property-based tests (hypothesis) of the two readers that take arbitrary user files: the audio
reader (:func:`aar.audio.load_audio`) and the codes reader (:func:`aar.cli.tokenizer_cmds.load_codes`).

Whatever the file holds, the audio reader returns finite mono audio or raises an ``AudioError``
(a ``NonFiniteAudioError`` exactly when a sample is NaN, infinite or beyond ``MAX_PEAK``); the
codes reader returns in-range integer codes of the stored shapes or raises a ``CLIError``."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from aar import SAT, SATConfig
from aar.audio import AudioError, NonFiniteAudioError, load_audio
from aar.audio.io import MAX_PEAK
from aar.cli.main import CLIError
from aar.cli.tokenizer_cmds import load_codes, save_codes

FEW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RATES = st.sampled_from([8_000, 16_000, 22_050, 24_000, 44_100, 48_000])


@pytest.fixture(scope="module")
def sat():
    torch.manual_seed(0)
    return SAT(SATConfig.preset("tiny")).eval()


def _load(data: bytes, name: str, **kwargs):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        return load_audio(path, **kwargs)


samples = hnp.arrays(
    np.float32,
    st.tuples(st.integers(1, 300), st.integers(1, 6)),
    elements=st.one_of(
        st.floats(-1, 1, width=32),
        st.sampled_from([np.nan, np.inf, -np.inf, 1e30, -3e38, 2.0, MAX_PEAK * 1.5]),
    ),
)


@FEW
@given(wav=samples, rate=RATES)
def test_float_audio_is_read_finite_or_refused_as_non_finite(wav, rate):
    buffer = io.BytesIO()
    sf.write(buffer, wav, rate, format="WAV", subtype="FLOAT")
    bad = not np.isfinite(wav).all() or np.abs(wav[np.isfinite(wav)]).max(initial=0) > MAX_PEAK
    try:
        out = _load(buffer.getvalue(), "clip.wav")
    except NonFiniteAudioError as exc:
        assert bad and "clip.wav" in str(exc) and "\n" not in str(exc)
        return
    except AudioError as exc:  # e.g. a handful of samples that resample to none
        assert not bad and "clip.wav" in str(exc)
        return
    assert not bad
    assert out.dtype == torch.float32 and out.shape[0] == 1 and torch.isfinite(out).all()
    expected = wav.shape[0] * 24_000 / rate
    assert abs(out.shape[1] - expected) <= 1


@FEW
@given(wav=hnp.arrays(np.float32, st.integers(1, 400), elements=st.floats(-1, 1, width=32)))
def test_24khz_mono_pcm16_reads_back_what_was_written(wav):
    buffer = io.BytesIO()
    sf.write(buffer, wav, 24_000, format="WAV", subtype="PCM_16")
    out = _load(buffer.getvalue(), "pcm.wav")[0].numpy()
    assert out.shape == wav.shape and np.abs(out - wav).max() <= 1.0 / 32767 + 1e-6


@FEW
@given(data=st.binary(max_size=600), suffix=st.sampled_from([".wav", ".flac", ".mp3", ".ogg", ".aiff"]),
       head=st.sampled_from([b"", b"RIFF\x24\x00\x00\x00WAVEfmt ", b"fLaC", b"ID3\x03\x00", b"OggS", b"\xff\xfb"]))
def test_arbitrary_bytes_are_audio_or_one_audio_error(data, suffix, head):
    try:
        out = _load(head + data, "x" + suffix)
    except AudioError as exc:
        assert str(exc).startswith(str(Path(tempfile.gettempdir()))) or "x" + suffix in str(exc)
        assert "\n" not in str(exc)
        return
    assert torch.isfinite(out).all() and out.shape[0] == 1


# ----------------------------------------------------------------- codes reader
def _codes_file(arrays: dict) -> Path:
    tmp = Path(tempfile.mkdtemp())
    path = tmp / "codes.npz"
    np.savez(path, **arrays)
    return path


@FEW
@given(data=st.data(), windows=st.integers(1, 3))
def test_valid_codes_round_trip(sat, data, windows):
    codes = [torch.from_numpy(data.draw(hnp.arrays(np.int64, (windows, s), elements=st.integers(0, sat.config.codebook_size - 1))))
             for s in sat.scales]
    length = data.draw(st.integers((windows - 1) * sat.window_samples + 1, windows * sat.window_samples))
    with tempfile.TemporaryDirectory() as tmp:
        path = save_codes(Path(tmp) / "c.npz", codes, sat, length)
        back, got_length = load_codes(path, sat)
    assert got_length == length and all(torch.equal(a, b) for a, b in zip(codes, back))


arrays = st.one_of(
    hnp.arrays(st.sampled_from([np.int16, np.int64, np.uint8, np.float32, np.float64, np.bool_]),
               hnp.array_shapes(min_dims=0, max_dims=2, max_side=4),
               elements=None),
    st.just(np.array("aar-sat-codes/1")),
    st.just(np.array(b"aar-sat-codes/1")),
    st.just(np.array("two")),
)


@FEW
@given(data=st.data())
def test_any_npz_is_codes_or_one_cli_error(sat, data):
    keys = ["format", "scales", "num_windows", "length", "sample_rate"] + [f"codes_{k}" for k in range(len(sat.scales))]
    good_meta = {"format": np.array("aar-sat-codes/1"), "scales": np.array(sat.scales), "num_windows": np.array(1),
                 "length": np.array(sat.window_samples), "sample_rate": np.array(sat.sample_rate)}
    stored = {}
    for key in keys:
        choice = data.draw(st.sampled_from(["good", "random", "absent"]), label=key)
        if choice == "random":
            stored[key] = data.draw(arrays, label=f"{key} value")
        elif choice == "good":
            if key in good_meta:
                stored[key] = good_meta[key]
            else:
                k = int(key.split("_")[1])
                stored[key] = np.zeros((1, sat.scales[k]), np.int16)
    path = _codes_file(stored)
    try:
        codes, length = load_codes(path, sat)
    except CLIError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
        return
    assert 1 <= len(codes) <= len(sat.scales) and length >= 1
    for k, c in enumerate(codes):
        assert c.dtype == torch.int64 and c.shape[1] == sat.scales[k]
        assert c.numel() == 0 or (0 <= int(c.min()) and int(c.max()) < sat.config.codebook_size)
