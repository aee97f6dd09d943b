"""Endless, resumable batches of random crops for training.

**File sources** (folder, AudioSet): the batches of a rank are a pure function of
(seed, rank, world size, batch index). Epoch ``e`` is a seeded permutation of the training
files (tiled when there are fewer files than processes); rank ``r`` of ``R`` takes positions
``r, r + R, ...`` (the last ``len % R`` are dropped so every rank has the same epoch length);
batch ``k`` holds items ``k * B .. k * B + B - 1`` of that endless sequence, and its crops come
from RNGs seeded by (seed, epoch, position). A file that fails to decode is replaced by a
file drawn from the same seeded RNG. DataLoader workers split the batches (worker ``w`` makes
batches ``w, w + W, ...``), so the stream does not depend on ``num_workers`` and its position
is one number: the batches consumed.

**WebDataset shards**: each (rank, worker) pair is a *slot*. Epoch ``e`` is a seeded
permutation of the shards; with at least as many shards as slots, slot ``s`` of ``n`` reads
shards ``s, s + n, ...``, otherwise every slot reads every shard and keeps samples
``s, s + n, ...``. Samples pass through a seeded shuffle buffer that is emptied at the end of
each shard, so a resume replays at most one shard. The position is one cursor per worker
(epoch, shard, samples drawn) plus the batches consumed (which worker's batch comes next),
exact when resuming with the same ``num_workers``.
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

MAX_REPLACEMENTS = 1000  # undecodable files in a row before a file source is declared unusable


@dataclass
class StreamSpec:
    """What the workers need to produce a rank's batches (picklable)."""

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


class _FileOrder:
    """The endless item sequence of one rank over a file source."""

    def __init__(self, spec: StreamSpec):
        self.spec = spec
        source: FileSource = spec.source
        self.train = np.arange(len(source)) if spec.train_indices is None else np.asarray(spec.train_indices)
        if len(self.train) == 0:
            raise DataError(f"{source.root}: no training files left after the validation split")
        self.reps = max(1, math.ceil(spec.world_size / len(self.train)))
        self.per_rank = len(self.train) * self.reps // spec.world_size
        self._epoch, self._seq = -1, None

    def _sequence(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            perm = np.random.default_rng([self.spec.seed, epoch]).permutation(len(self.train))
            self._epoch, self._seq = epoch, np.tile(self.train[perm], self.reps)
        return self._seq

    def item(self, g: int, failed: dict[str, str]) -> torch.Tensor:
        """Crop ``Tensor[1 x length]`` of item ``g`` of this rank (replacing undecodable files)."""
        spec = self.spec
        epoch, offset = divmod(g, self.per_rank)
        position = spec.rank + offset * spec.world_size
        index = int(self._sequence(epoch)[position])
        rng = np.random.default_rng([spec.seed, epoch, position])
        last = None
        for attempt in range(MAX_REPLACEMENTS + 1):
            if attempt:
                rng = np.random.default_rng([spec.seed, epoch, position, attempt])
                index = int(self.train[rng.integers(len(self.train))])
            try:
                wav = spec.source.read(index, spec.sample_rate)
            except AudioError as exc:
                failed[spec.source.name(index)] = last = str(exc)
                continue
            return random_crop(wav, spec.length, rng)
        raise DataError(f"{spec.source.root}: {MAX_REPLACEMENTS + 1} files in a row failed to decode; last: {last}")

    def batch(self, k: int) -> tuple[torch.Tensor, dict[str, str]]:
        failed: dict[str, str] = {}
        b = self.spec.batch_size
        return torch.stack([self.item(g, failed) for g in range(k * b, (k + 1) * b)]), failed


class CropStream(IterableDataset):
    """Yields dicts ``{"wav": Tensor[B x 1 x length], "worker": int, "cursor": tuple, "failed": {name: reason}}``
    forever. ``start``: ``{"batches": n}`` (batches already consumed) and, for shards,
    ``"cursors": {worker: cursor}``."""

    def __init__(self, spec: StreamSpec, start: dict | None = None):
        super().__init__()
        self.spec = spec
        self.start = dict(start or {})

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        consumed = int(self.start.get("batches", 0))
        if isinstance(self.spec.source, ShardSource):
            # The DataLoader asks worker 0 first; the batch due next is the (logical) worker
            # ``consumed % workers``'s, so DataLoader worker i plays that role shifted by i.
            yield from self._shard_batches((worker + consumed) % workers, workers)
            return
        order = _FileOrder(self.spec)
        k = consumed + worker
        while True:
            wav, failed = order.batch(k)
            yield {"wav": wav, "worker": worker, "cursor": (k + 1,), "failed": failed}
            k += workers

    # ---------------------------------------------------------------- shards
    def _shard_batches(self, worker: int, workers: int):
        spec = self.spec
        slot, slots = spec.rank * workers + worker, spec.world_size * workers
        batch, failed = [], {}
        cursor = self.start.get("cursors", {}).get(worker)
        for name, wav, reason, position in self._shard_items(slot, slots, cursor):
            if wav is None:
                failed[name] = reason
                continue
            batch.append(wav)
            if len(batch) == spec.batch_size:
                yield {"wav": torch.stack(batch), "worker": worker, "cursor": position, "failed": failed}
                batch, failed = [], {}

    def _shard_samples(self, url: str, slot: int, slots: int, split_samples: bool) -> Iterator[dict]:
        spec = self.spec
        for k, sample in enumerate(spec.source.samples(url)):
            if split_samples and k % slots != slot:
                continue
            if spec.val_fraction > 0 and key_hash(sample["__key__"], spec.seed) < spec.val_fraction:
                continue
            yield sample

    def _shard_items(self, slot: int, slots: int, cursor):
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
                        if failures_in_a_row > MAX_REPLACEMENTS:
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
        raise DataError(last[len(prefix) :] if last.startswith(prefix) else last) from None


class BatchLoader:
    """This rank's endless, resumable stream of ``Tensor[B x 1 x length]`` batches.

    Decode failures reported by the workers are recorded in ``failures`` (each logged once).
    ``state_dict()`` holds the position of the last consumed batch plus the failures; after
    ``load_state_dict`` iteration continues exactly where it stopped.
    """

    def __init__(self, spec: StreamSpec, num_workers: int = 0, pin_memory: bool = False, failures: FailureLog | None = None):
        self.spec = spec
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.failures = failures if failures is not None else FailureLog()
        self.shards = isinstance(spec.source, ShardSource)
        self.position: dict = {"batches": 0, "cursors": {}}  # cursors: shards only, per worker

    def __iter__(self) -> Iterator[torch.Tensor]:
        # A private generator: creating the DataLoader iterator must not consume the global torch RNG
        # (a resumed run would otherwise draw different random numbers than an uninterrupted one).
        loader = DataLoader(
            CropStream(self.spec, self.position),
            batch_size=None,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            generator=torch.Generator().manual_seed(self.spec.seed),
        )
        for item in _plain_errors(loader):
            self.position["batches"] += 1
            if self.shards:
                self.position["cursors"][int(item["worker"])] = tuple(int(c) for c in item["cursor"])
            for name, reason in item["failed"].items():
                self.failures.add(name, reason)
            yield item["wav"]

    def state_dict(self) -> dict:
        position = {
            "batches": self.position["batches"],
            "cursors": {int(w): list(c) for w, c in self.position["cursors"].items()},
        }
        return {"position": position, "num_workers": self.num_workers, "failures": dict(self.failures.reasons)}

    def load_state_dict(self, state: dict, exact: bool = True):
        """Continue from ``state``. Shards need the same ``num_workers`` for an exact continuation;
        otherwise (or with ``exact=False``) every shard worker starts the epoch after the furthest
        one reached."""
        self.failures.merge(state.get("failures", {}))
        position = state.get("position", {})
        batches = int(position.get("batches", 0))
        cursors = {int(w): tuple(c) for w, c in position.get("cursors", {}).items()}
        if not self.shards or (exact and state.get("num_workers") == self.num_workers):
            self.position = {"batches": batches, "cursors": cursors}
            return
        if cursors:
            log.warning(
                "shard position cannot be restored exactly (workers %s -> %s, or another process count); "
                "continuing from the next epoch",
                state.get("num_workers"),
                self.num_workers,
            )
        epoch = max((c[0] for c in cursors.values()), default=-1) + 1
        self.position = {"batches": 0, "cursors": {w: (epoch, 0, 0) for w in range(max(1, self.num_workers))}}
