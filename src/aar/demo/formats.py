"""Readers for the two container formats the demo corpus takes recordings out of.

Neither renders anything: both return the recorded sample data stored in the file.

* Gravis UltraSound patches (``.pat``, used by freepats/TiMidity): each patch holds one or
  more recorded notes of an instrument as raw PCM, with the rate it was recorded at.
* OpenTTD sound catalogues (``.cat``, used by OpenSFX): a table of named WAV files.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

GUS_MAGICS = (b"GF1PATCH110\0", b"GF1PATCH100\0")
GUS_HEADER_BYTES = 129 + 63 + 47  # file, instrument and layer headers
GUS_SAMPLE_HEADER_BYTES = 96
GUS_MODE_16BIT = 1
GUS_MODE_UNSIGNED = 2


class FormatError(ValueError):
    """A container file is not in the format expected; the message names the file."""


@dataclass(frozen=True)
class PatchSample:
    """One recorded note of a GUS patch: ``audio`` float32 ``[T]`` at ``sample_rate``."""

    index: int
    audio: np.ndarray
    sample_rate: int
    root_hz: float


def read_gus_patch(path: str | Path) -> list[PatchSample]:
    """All samples of the first layer of the GUS patch at ``path``."""
    path = Path(path)
    data = path.read_bytes()
    if data[:12] not in GUS_MAGICS or len(data) < GUS_HEADER_BYTES:
        raise FormatError(f"{path}: not a GUS patch (GF1PATCH header missing)")
    n_samples = data[198]
    offset = GUS_HEADER_BYTES
    samples = []
    for index in range(n_samples):
        header = data[offset : offset + GUS_SAMPLE_HEADER_BYTES]
        if len(header) < GUS_SAMPLE_HEADER_BYTES:
            raise FormatError(f"{path}: truncated header of sample {index}")
        n_bytes, _loop_start, _loop_end, rate = struct.unpack_from("<IIIH", header, 8)
        root_millihz = struct.unpack_from("<I", header, 30)[0]
        modes = header[55]
        offset += GUS_SAMPLE_HEADER_BYTES
        raw = data[offset : offset + n_bytes]
        if len(raw) < n_bytes or rate == 0:
            raise FormatError(f"{path}: sample {index} is truncated or has no sample rate")
        offset += n_bytes
        samples.append(PatchSample(index, _pcm_to_float(raw, modes), rate, root_millihz / 1000.0))
    return samples


def _pcm_to_float(raw: bytes, modes: int) -> np.ndarray:
    wide = bool(modes & GUS_MODE_16BIT)
    unsigned = bool(modes & GUS_MODE_UNSIGNED)
    dtype = ("<u2" if unsigned else "<i2") if wide else ("u1" if unsigned else "i1")
    values = np.frombuffer(raw[: len(raw) - len(raw) % (2 if wide else 1)], dtype=dtype).astype(np.float32)
    full_scale = 32768.0 if wide else 128.0
    if unsigned:
        values -= full_scale
    return values / full_scale


@dataclass(frozen=True)
class CatEntry:
    """One sound of an OpenTTD catalogue: its index, its descriptive name, its WAV bytes."""

    index: int
    name: str
    wav_bytes: bytes


def read_openttd_cat(path: str | Path) -> list[CatEntry]:
    """All entries of the OpenTTD sound catalogue at ``path`` (empty entries included)."""
    path = Path(path)
    data = path.read_bytes()
    if len(data) < 8:
        raise FormatError(f"{path}: too short for an OpenTTD sound catalogue")
    table_bytes = struct.unpack_from("<I", data, 0)[0] & 0x7FFFFFFF
    if table_bytes % 8 or table_bytes > len(data):
        raise FormatError(f"{path}: not an OpenTTD sound catalogue (bad table size {table_bytes})")
    entries = []
    for index in range(table_bytes // 8):
        start, size = struct.unpack_from("<II", data, 8 * index)
        start &= 0x7FFFFFFF
        if start + size > len(data) or size < 1:
            raise FormatError(f"{path}: entry {index} points outside the file")
        name_len = data[start]
        name = data[start + 1 : start + 1 + name_len].rstrip(b"\0").decode("latin-1")
        entries.append(CatEntry(index, name, data[start + 1 + name_len : start + size]))
    return entries


def decode_wav_bytes(blob: bytes, what: str) -> tuple[np.ndarray, int]:
    """Decode an in-memory audio file to mono float32 ``[T]`` and its rate; ``what`` names it in errors."""
    try:
        audio, rate = sf.read(io.BytesIO(blob), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types
        raise FormatError(f"{what}: cannot decode audio ({exc})") from None
    return audio.mean(axis=1), int(rate)
