"""Reading recordings out of GUS patches and OpenTTD sound catalogues."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import soundfile as sf

from aar.demo.formats import FormatError, decode_wav_bytes, read_gus_patch, read_openttd_cat


def gus_patch(samples: list[tuple[bytes, int, int, int]]) -> bytes:
    """A GUS patch holding ``samples`` = [(raw pcm, rate, root in mHz, modes)]."""
    header = b"GF1PATCH110\0" + b"ID#000002\0" + b"test".ljust(60, b"\0")
    header += struct.pack("<BBBHHI", 1, 14, 0, len(samples), 127, 0).ljust(129 - len(header), b"\0")
    instrument = struct.pack("<H16sIB", 0, b"test", 0, 1).ljust(63, b"\0")
    layer = struct.pack("<BBIB", 0, 0, 0, len(samples)).ljust(47, b"\0")
    body = b""
    for raw, rate, root_mhz, modes in samples:
        head = b"sample\0" + b"\0" + struct.pack("<IIIHIII", len(raw), 0, len(raw), rate, 20000, 20000000, root_mhz)
        head = head.ljust(55, b"\0") + bytes([modes])
        body += head.ljust(96, b"\0") + raw
    return header + instrument + layer + body


def test_gus_patch_samples_read_back(tmp_path):
    signed16 = np.array([0, 16384, -32768, 32767], dtype="<i2")
    unsigned8 = np.array([128, 255, 0, 192], dtype="u1")
    path = tmp_path / "000_Test.pat"
    path.write_bytes(
        gus_patch([(signed16.tobytes(), 44100, 440000, 0b101), (unsigned8.tobytes(), 22050, 220000, 0b010)])
    )
    first, second = read_gus_patch(path)
    assert (first.sample_rate, first.root_hz, second.sample_rate, second.root_hz) == (44100, 440.0, 22050, 220.0)
    assert np.allclose(first.audio, [0.0, 0.5, -1.0, 32767 / 32768])
    assert np.allclose(second.audio, [0.0, 127 / 128, -1.0, 0.5])
    assert first.audio.dtype == np.float32


def test_gus_patch_errors_name_the_file(tmp_path):
    bad = tmp_path / "not_a_patch.pat"
    bad.write_bytes(b"RIFF" + b"\0" * 300)
    with pytest.raises(FormatError, match="not_a_patch.pat"):
        read_gus_patch(bad)
    truncated = tmp_path / "truncated.pat"
    truncated.write_bytes(gus_patch([(b"\0" * 400, 44100, 440000, 1)])[:-100])
    with pytest.raises(FormatError, match="truncated.pat.*sample 0"):
        read_gus_patch(truncated)


def wav_bytes(audio: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def openttd_cat(entries: list[tuple[str, bytes]]) -> bytes:
    table, blobs = b"", b""
    offset = 8 * len(entries)
    for name, data in entries:
        blob = bytes([len(name) + 1]) + name.encode("latin-1") + b"\0" + data
        table += struct.pack("<II", offset | 0x80000000, len(blob))
        blobs += blob
        offset += len(blob)
    return table + blobs


def test_openttd_catalogue_entries_read_back(tmp_path):
    rng = np.random.default_rng(0)
    a = (0.3 * rng.standard_normal(1000)).clip(-1, 1)
    b = (0.1 * rng.standard_normal((500, 2))).clip(-1, 1)
    path = tmp_path / "set.cat"
    path.write_bytes(openttd_cat([('"Cow". Original by someone.', wav_bytes(a, 44100)), ("Empty", b"")]))
    first, second = read_openttd_cat(path)
    assert (first.index, first.name, second.name, second.wav_bytes) == (0, '"Cow". Original by someone.', "Empty", b"")
    audio, rate = decode_wav_bytes(first.wav_bytes, "cow")
    assert rate == 44100 and np.allclose(audio, a, atol=1 / 32768)
    stereo, _ = decode_wav_bytes(wav_bytes(b, 8000), "stereo")
    assert stereo.shape == (500,) and np.allclose(stereo, b.mean(axis=1), atol=1 / 32768)


def test_openttd_catalogue_errors_name_the_file(tmp_path):
    broken = tmp_path / "broken.cat"
    broken.write_bytes(struct.pack("<II", 0x80000008, 10_000) + b"\0" * 8)
    with pytest.raises(FormatError, match="broken.cat.*entry 0"):
        read_openttd_cat(broken)
    with pytest.raises(FormatError, match="sound 7: cannot decode"):
        decode_wav_bytes(b"not audio at all", "sound 7")
