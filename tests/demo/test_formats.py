"""Reading recordings out of OpenTTD sound catalogues."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import soundfile as sf

from aar.demo.formats import FormatError, decode_wav_bytes, read_openttd_cat


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
