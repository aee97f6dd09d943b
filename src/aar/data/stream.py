"""Endless, resumable batches of random crops for training.

Every (rank, worker) pair is a *slot* that reads its own share of the data:

- file sources: each epoch is a seeded permutation of the training files (tiled when there are
  fewer files than slots); slot ``s`` of ``n`` takes positions ``s, s + n, ...``;
- WebDataset shards: each epoch is a seeded permutation of the shards; with at least as many
  shards as slots, slot ``s`` reads shards ``s, s + n, ...``, otherwise every slot reads every
  shard and keeps samples ``s, s + n, ...``. Samples pass through a seeded shuffle buffer that
  is emptied at the end of each shard, so a resume replays at most one shard.

Crop offsets come from RNGs seeded by (seed, epoch, position or key), never by the worker, so
batches are the same for any ``num_workers``. Each batch carries its slot's *cursor* (where the
slot stands after the batch); :class:`BatchLoader` keeps the cursors of the batches actually
consumed, which is all a checkpoint needs to continue the stream exactly.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from aar.audio.io import AudioError
from aar.data.decode import FailureLog, random_crop
from aar.data.sources import DataError, FileSource, ShardSource, read_shard_audio
from aar.data.split import key_hash, name_seed

log = logging.getLogger("aar.data")

Cursor = tuple[int, ...]


@dataclass
class StreamSpec:
    """What each slot needs to produce its batches (picklable, sent to workers)."""

    source: FileSource | ShardSource
    batch_size: int
    length: int
    sample_rate: int = 24_000
    seed: int = 0
    rank: int = 0
    world_size: int = 1
    train_indices: np.ndarray | None = None  # file sources: the training files
    val_fraction: float = 0.0  # shards: keys hashed below this are validation, skipped here
    shuffle_buffer: int = 1000  # shards only


def _shuffled(items: Iterator, size: int, rng: np.random.Generator) -> Iterator:
    """A seeded shuffle buffer of ``size`` items; drained (shuffled) when ``items`` ends."""
    buf = []
    for item in items:
        if len(buf) < size:
            buf.append(item)
            continue
        j = int(rng.integers(size))
        buf[j], item = item, buf[j]
        yield item
    for j in rng.permutation(len(buf)):
        yield buf[j]


class CropStream(IterableDataset):
    """Yields dicts ``{"wav": Tensor[B x 1 x length], "worker": int, "cursor": tuple, "failed": {name: reason}}``
    forever. ``start`` maps worker id -> cursor to continue from."""

    def __init__(self, spec: StreamSpec, start: dict[int, Cursor] | None = None):
        super().__init__()
        self.spec = spec
        self.start = dict(start or {})

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        spec = self.spec
        slot, slots = spec.rank * workers + worker, spec.world_size * workers
        cursor = self.start.get(worker)
        if isinstance(spec.source, ShardSource):
            items = self._shard_items(slot, slots, cursor)
        else:
            items = self._file_items(slot, slots, cursor)
        batch, failed = [], {}
        for name, wav, reason, position in items:
            if wav is None:
                failed[name] = reason
                continue
            batch.append(wav)
            if len(batch) == spec.batch_size:
                yield {"wav": torch.stack(batch), "worker": worker, "cursor": position, "failed": failed}
                batch, failed = [], {}

    # ---------------------------------------------------------------- files
    def _file_items(self, slot: int, slots: int, cursor: Cursor | None):
        spec = self.spec
        source: FileSource = spec.source
        train = np.arange(len(source)) if spec.train_indices is None else np.asarray(spec.train_indices)
        if len(train) == 0:
            raise DataError(f"{source.root}: no training files left after the validation split")
        epoch, pos = cursor if cursor is not None else (0, 0)
        reps = max(1, math.ceil(slots / len(train)))
        failures_in_a_row = 0
        while True:
            seq = np.tile(train[np.random.default_rng([spec.seed, epoch]).permutation(len(train))], reps)
            mine = np.arange(slot, len(seq), slots)
            while pos < len(mine):
                p = int(mine[pos])
                index = int(seq[p])
                pos += 1
                name = source.name(index)
                try:
                    wav = source.read(index, spec.sample_rate)
                except AudioError as exc:
                    failures_in_a_row += 1
                    if failures_in_a_row > len(seq):
                        raise DataError(
                            f"{source.root}: {failures_in_a_row} files in a row failed to decode; last: {exc}"
                        ) from None
                    yield name, None, str(exc), (epoch, pos)
                    continue
                failures_in_a_row = 0
                crop = random_crop(wav, spec.length, np.random.default_rng([spec.seed, epoch, p]))
                yield name, crop, None, (epoch, pos)
            epoch, pos = epoch + 1, 0

    # ---------------------------------------------------------------- shards
    def _shard_samples(self, url: str, slot: int, slots: int, split_samples: bool) -> Iterator[dict]:
        spec = self.spec
        for k, sample in enumerate(spec.source.samples(url)):
            if split_samples and k % slots != slot:
                continue
            if spec.val_fraction > 0 and key_hash(sample["__key__"], spec.seed) < spec.val_fraction:
                continue
            yield sample

    def _shard_items(self, slot: int, slots: int, cursor: Cursor | None):
        spec = self.spec
        urls = spec.source.urls
        epoch, shard_pos, drawn = cursor if cursor is not None else (0, 0, 0)
        split_samples = len(urls) < slots
        failures_in_a_row = 0
        while True:
            order = np.random.default_rng([spec.seed, epoch]).permutation(len(urls))
            mine = order if split_samples else order[slot::slots]
            whole_epoch, produced = shard_pos == 0 and drawn == 0, 0
            while shard_pos < len(mine):
                url = urls[int(mine[shard_pos])]
                rng = np.random.default_rng([spec.seed, epoch, int(mine[shard_pos])])
                samples = enumerate(
                    _shuffled(self._shard_samples(url, slot, slots, split_samples), spec.shuffle_buffer, rng), start=1
                )
                while True:
                    try:
                        k, sample = next(samples)
                    except StopIteration:
                        break
                    except DataError as exc:  # unreadable or truncated shard: report it, go on with the next
                        produced += 1
                        yield url, None, str(exc), (epoch, shard_pos + 1, 0)
                        break
                    if k <= drawn:
                        continue
                    produced += 1
                    key = sample["__key__"]
                    try:
                        wav = read_shard_audio(sample, spec.sample_rate)
                    except AudioError as exc:
                        failures_in_a_row += 1
                        if failures_in_a_row > 10_000:
                            raise DataError(f"{url}: {failures_in_a_row} samples in a row failed to decode") from None
                        yield f"{url}:{key}", None, str(exc), (epoch, shard_pos, k)
                        continue
                    failures_in_a_row = 0
                    crop = random_crop(wav, spec.length, np.random.default_rng([spec.seed, epoch, name_seed(key)]))
                    yield key, crop, None, (epoch, shard_pos, k)
                shard_pos, drawn = shard_pos + 1, 0
            if produced == 0 and whole_epoch:
                raise DataError(
                    f"{urls[0]}: the shards hold no training samples for worker slot {slot} of {slots} "
                    "(empty shards, everything held out for validation, or fewer samples than workers)"
                )
            epoch, shard_pos = epoch + 1, 0


def _plain_errors(loader: DataLoader) -> Iterator[dict]:
    """Iterate ``loader``, re-raising a worker's DataError with its own one-line message (the
    DataLoader wraps it in the worker's traceback)."""
    try:
        yield from loader
    except DataError as exc:
        last = str(exc).strip().splitlines()[-1]
        prefix = f"{DataError.__module__}.{DataError.__name__}: "
        raise DataError(last[len(prefix):] if last.startswith(prefix) else last) from None


class BatchLoader:
    """This rank's endless, resumable stream of ``Tensor[B x 1 x length]`` batches.

    Decode failures reported by the workers are recorded in ``failures`` (each logged once).
    ``state_dict()`` holds the cursor of every worker's last consumed batch plus the failures;
    after ``load_state_dict`` iteration continues exactly where it stopped (same
    ``num_workers``, ranks and data); otherwise it continues from the next epoch.
    """

    def __init__(self, spec: StreamSpec, num_workers: int = 0, pin_memory: bool = False, failures: FailureLog | None = None):
        self.spec = spec
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.failures = failures if failures is not None else FailureLog()
        self.cursors: dict[int, Cursor] = {}

    def __iter__(self) -> Iterator[torch.Tensor]:
        # A private generator: creating the DataLoader iterator must not consume the global torch RNG
        # (a resumed run would otherwise draw different random numbers than an uninterrupted one).
        loader = DataLoader(
            CropStream(self.spec, self.cursors),
            batch_size=None,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            generator=torch.Generator().manual_seed(self.spec.seed),
        )
        for item in _plain_errors(loader):
            self.cursors[int(item["worker"])] = tuple(int(c) for c in item["cursor"])
            for name, reason in item["failed"].items():
                self.failures.add(name, reason)
            yield item["wav"]

    def state_dict(self) -> dict:
        return {
            "cursors": {int(w): list(c) for w, c in self.cursors.items()},
            "num_workers": self.num_workers,
            "failures": dict(self.failures.reasons),
        }

    def load_state_dict(self, state: dict, exact: bool = True):
        """Continue from ``state``. With ``exact=False`` (or a different ``num_workers``) every worker
        starts the epoch after the furthest one reached."""
        self.failures.merge(state.get("failures", {}))
        cursors = {int(w): tuple(c) for w, c in state.get("cursors", {}).items()}
        if exact and state.get("num_workers") == self.num_workers:
            self.cursors = cursors
            return
        if cursors:
            log.warning(
                "data position cannot be restored exactly (workers %s -> %s or a different process count); "
                "continuing from the next epoch",
                state.get("num_workers"),
                self.num_workers,
            )
            epoch = max(c[0] for c in cursors.values()) + 1
            zeros = (0,) * (len(next(iter(cursors.values()))) - 1)
            self.cursors = {w: (epoch, *zeros) for w in range(max(1, self.num_workers))}
