"""The reader for the container format the demo corpus takes environmental recordings out of:
OpenTTD sound catalogues (``.cat``, used by OpenSFX), a table of named WAV files. It renders
nothing: it returns the recorded sample data stored in the file.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

class FormatError(ValueError):
    """A container file is not in the format expected; the message names the file."""


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
