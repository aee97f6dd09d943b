"""Small audio folders and shards written by the tests."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


def tone(seconds: float, sr: int, level: float, seed: int = 0) -> np.ndarray:
    """A clip whose every sample is near ``level`` (so crops can be traced back to their file)."""
    rng = np.random.default_rng(seed)
    return (level + 0.001 * rng.standard_normal(int(seconds * sr))).astype(np.float32)


def write_folder(root: Path, n: int = 6, sr: int = 24_000, seconds: float = 1.5) -> dict[str, float]:
    """``n`` files across sub-folders and formats; returns name -> level."""
    levels = {}
    for i in range(n):
        ext = ("wav", "flac", "ogg")[i % 3]
        path = root / f"part{i % 2}" / f"clip{i}.{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        level = round(0.05 * (i + 1), 3)
        sf.write(path, tone(seconds, sr, level, i), sr)
        levels[str(path.relative_to(root))] = level
    return levels


def audio_bytes(wav: np.ndarray, sr: int, fmt: str) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wav, sr, format=fmt)
    return buf.getvalue()


def write_shards(root: Path, n_shards: int, per_shard: int, sr: int = 16_000, seconds: float = 1.2) -> dict[str, float]:
    """WebDataset shards ``shard-000.tar`` ... of flac/wav samples; returns key -> level."""
    from webdataset import TarWriter

    root.mkdir(parents=True, exist_ok=True)
    levels = {}
    for s in range(n_shards):
        with TarWriter(str(root / f"shard-{s:03d}.tar")) as tar:
            for j in range(per_shard):
                key = f"s{s}_{j:03d}"
                level = round(0.01 + 0.9 * len(levels) / (n_shards * per_shard), 4)
                fmt = "flac" if j % 2 == 0 else "wav"
                tar.write({"__key__": key, fmt: audio_bytes(tone(seconds, sr, level, len(levels)), sr, fmt.upper()),
                           "json": b"{}"})
                levels[key] = level
    return levels


@pytest.fixture
def audio_folder(tmp_path):
    root = tmp_path / "audio"
    return root, write_folder(root)
