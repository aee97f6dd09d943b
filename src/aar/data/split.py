"""The fixed, seeded validation split and the validation clips.

Membership is decided by a keyed hash of each item's name, so it does not depend on file
order, on the number of processes or workers, or on where shards are stored:

- file sources: the ``n_val`` names with the smallest hash are held out, where
  ``n_val = min(max_clips, max(1, round(fraction * N)))`` (none when ``N < 2``);
- WebDataset shards: a sample is held out when its key's hash falls below ``fraction``.

Each validation clip is one fixed crop (seeded by its name), decoded once and kept in memory.
"""

from __future__ import annotations

import hashlib
import logging
import zlib
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from aar.audio.io import AudioError
from aar.data.decode import FailureLog, random_crop
from aar.data.sources import DataError, FileSource, ShardSource, read_shard_audio

log = logging.getLogger("aar.data")


def key_hash(key: str, seed: int) -> float:
    """A uniform number in [0, 1) determined by ``key`` and ``seed``."""
    digest = hashlib.sha1(f"{seed}:{key}".encode()).hexdigest()
    return int(digest[:15], 16) / float(16**15)


def name_seed(name: str) -> int:
    return zlib.crc32(name.encode())


def split_files(source: FileSource, fraction: float, max_clips: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of (training, validation) files, both sorted."""
    n = len(source)
    n_val = 0 if fraction <= 0 or max_clips <= 0 or n < 2 else min(max_clips, max(1, round(fraction * n)), n - 1)
    order = sorted(range(n), key=lambda i: key_hash(source.name(i), seed))
    val = np.sort(np.asarray(order[:n_val], dtype=np.int64))
    train = np.sort(np.asarray(order[n_val:], dtype=np.int64))
    return train, val


@dataclass
class ValidationSet:
    """Held-out clips: ``wav`` is ``Tensor[N x 1 x length]``, ``names`` their sources."""

    wav: torch.Tensor
    names: list[str]

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def empty(cls, length: int) -> "ValidationSet":
        return cls(torch.zeros(0, 1, length), [])


def _fixed_crop(wav: torch.Tensor, length: int, name: str, seed: int) -> torch.Tensor:
    return random_crop(wav, length, np.random.default_rng([seed, 1, name_seed(name)]))


def load_file_validation(
    source: FileSource, indices: np.ndarray, length: int, sample_rate: int, seed: int, failures: FailureLog
) -> ValidationSet:
    clips, names = [], []
    for i in tqdm(indices.tolist(), desc="validation clips", leave=False, disable=len(indices) < 16):
        name = source.name(i)
        try:
            wav = source.read(i, sample_rate)
        except AudioError as exc:
            failures.add(name, str(exc))
            continue
        clips.append(_fixed_crop(wav, length, name, seed))
        names.append(name)
    return _stack(clips, names, length)


def load_shard_validation(
    source: ShardSource, fraction: float, max_clips: int, length: int, sample_rate: int, seed: int, failures: FailureLog
) -> ValidationSet:
    """Scan the shards in order for held-out keys until ``max_clips`` are found. The first shard is
    always opened, so an unreadable shard list fails here, before any model is built."""
    clips, names = [], []
    if fraction <= 0 or max_clips <= 0:
        return _stack(clips, names, length)
    for url in source.urls:
        for sample in source.samples(url):
            key = sample["__key__"]
            if key_hash(key, seed) >= fraction:
                continue
            try:
                wav = read_shard_audio(sample, sample_rate)
            except AudioError as exc:
                failures.add(f"{url}:{key}", str(exc))
                continue
            clips.append(_fixed_crop(wav, length, key, seed))
            names.append(key)
            if len(clips) >= max_clips:
                return _stack(clips, names, length)
    return _stack(clips, names, length)


def load_validation_source(
    source: FileSource | ShardSource, max_clips: int, length: int, sample_rate: int, seed: int, failures: FailureLog
) -> ValidationSet:
    """Validation clips from a separate source (an evaluation split): all of it, or the
    ``max_clips`` items with the smallest key hash when it holds more."""
    if isinstance(source, ShardSource):
        return load_shard_validation(source, 1.0, max_clips, length, sample_rate, seed, failures)
    order = sorted(range(len(source)), key=lambda i: key_hash(source.name(i), seed))
    return load_file_validation(source, np.sort(np.asarray(order[:max_clips], dtype=np.int64)), length, sample_rate, seed, failures)


def _stack(clips: list[torch.Tensor], names: list[str], length: int) -> ValidationSet:
    return ValidationSet(torch.stack(clips), names) if clips else ValidationSet.empty(length)


def check_shards_have_audio(source: ShardSource):
    """Open the first shard and check it holds at least one sample (DataError otherwise)."""
    url = source.urls[0]
    for _ in source.samples(url):
        return
    raise DataError(f"{url}: WebDataset shard holds no samples")
