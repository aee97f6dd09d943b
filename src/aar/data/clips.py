"""Whole clips, one by one, from any source: what offline passes (token caches, evaluation) read."""

from __future__ import annotations

from typing import Iterator

import torch

from aar.audio.io import AudioError
from aar.data.decode import FailureLog
from aar.data.sources import DataError, FileSource, ShardSource, read_shard_audio


def iter_clips(
    source: FileSource | ShardSource,
    sample_rate: int = 24_000,
    failures: FailureLog | None = None,
    indices=None,
) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield ``(name, Tensor[1 x T])`` for every decodable clip of ``source`` in a fixed order
    (files: sorted, or ``indices``; shards: as stored). Undecodable clips and unreadable shards
    are skipped and recorded in ``failures``."""
    failures = failures if failures is not None else FailureLog()
    if isinstance(source, FileSource):
        for i in range(len(source)) if indices is None else indices:
            name = source.name(int(i))
            try:
                yield name, source.read(int(i), sample_rate)
            except AudioError as exc:
                failures.add(name, str(exc))
        return
    for url in source.urls:
        try:
            for sample in source.samples(url):
                key = sample["__key__"]
                try:
                    wav = read_shard_audio(sample, sample_rate)
                except AudioError as exc:
                    failures.add(f"{url}:{key}", str(exc))
                    continue
                yield key, wav
        except DataError as exc:
            failures.add(url, str(exc))
