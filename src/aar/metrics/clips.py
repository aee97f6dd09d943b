"""Folders of clips for evaluation: listing, pairing by name, reading ahead in threads."""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

import torch

from aar.audio import AUDIO_EXTENSIONS, AudioError, list_audio_files, load_audio
from aar.metrics.errors import MetricError

Item = TypeVar("Item")
Result = TypeVar("Result")


def collect_clips(root: str | Path, role: str) -> dict[str, Path]:
    """Audio files under ``root`` keyed by their path relative to it without the extension.

    ``a/b.wav`` in one folder pairs with ``a/b.flac`` in another. Raises :class:`MetricError` when
    the folder is missing or has no audio, or when two files share a name (``x.wav`` and ``x.flac``).
    """
    root = Path(root)
    if not root.is_dir():
        raise MetricError(f"{role} folder {root}: no such directory")
    clips: dict[str, Path] = {}
    for path in list_audio_files(root):
        key = path.relative_to(root).with_suffix("").as_posix()
        if key in clips:
            raise MetricError(f"{role} folder {root}: {clips[key].name} and {path.name} have the same name; keep one")
        clips[key] = path
    if not clips:
        raise MetricError(f"{role} folder {root}: no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    return clips


def read_clip(path: Path, sample_rate: int) -> torch.Tensor | AudioError:
    """Mono ``Tensor[T]`` at ``sample_rate``, or the :class:`AudioError` that reading raised."""
    try:
        return load_audio(path, sample_rate=sample_rate, mono=True)[0]
    except AudioError as exc:
        return exc


def read_ahead(items: Iterable[Item], read: Callable[[Item], Result], depth: int = 8, workers: int = 4) -> Iterator[tuple[Item, Result]]:
    """``(item, read(item))`` in order, with up to ``depth`` reads running ahead in ``workers`` threads."""
    items = iter(items)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = deque((item, pool.submit(read, item)) for item in islice(items, depth))
        while pending:
            item, future = pending.popleft()
            for following in islice(items, 1):
                pending.append((following, pool.submit(read, following)))
            yield item, future.result()
