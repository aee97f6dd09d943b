"""The token cache on disk: shards written atomically, the index that makes a cache complete,
and the readers of AAR training (random access, and a loader that streams shards).

Layout of a cache folder::

    cache.json                   the index (written last: a folder without it is incomplete)
    tokenize.json                the settings of the tokenize-dataset run (checked on resume)
    tokenizer/                   the SAT that made the codes (SAT.from_pretrained)
    shard-00000.codes.npy        int16 [N x L]: every scale's codes of N one-second windows
    shard-00000.cond.npy         float16 [N x cond_dim] CLAP embeddings, or int64 [N] class ids
                                 (absent for condition "none")
    shard-00000.names.json       where each window comes from: "<clip name>#<window index>"
    shard-00000.done.json        the shard's record (windows, clips, undecodable clips), written
                                 after its data: a shard without it is redone on resume

Every file is written to a temporary name and renamed, so a killed writer leaves whole files
or none; a shard counts as finished only once its record exists. Shard ``k`` holds the clips
of work unit ``k`` (a fixed slice of the source), so the cache does not depend on how many
processes wrote it.

This module is the data layer's half (numpy only); :mod:`aar.transformer.token_cache` adds
the tokenizer and :mod:`aar.train.tokenize` the encoding driver.
"""

from __future__ import annotations

import heapq
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from aar.checkpoint import CheckpointError, atomic_path, atomic_write_text

CACHE_META = "cache.json"
CACHE_KIND = "aar-token-cache"
CACHE_VERSION = 2
PLAN_NAME = "tokenize.json"
TOKENIZER_SUBDIR = "tokenizer"
COND_DTYPES = {"clap": np.float16, "label": np.int64}


# ---------------------------------------------------------------------- shards
def shard_name(index: int) -> str:
    return f"shard-{index:05d}"


def save_npy(path: Path, array: np.ndarray) -> None:
    """``np.save`` to a temporary file renamed onto ``path`` (whole file or none)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array)


def write_shard(out: Path, index: int, codes: np.ndarray, cond: np.ndarray | None, names: list[str],
                record: dict) -> dict:
    """Write shard ``index`` (its codes, conditions, names, then its record) and return the
    record. A shard without windows gets only its record."""
    if len(codes) != len(names) or (cond is not None and len(cond) != len(names)):
        raise ValueError(f"shard {index}: {len(codes)} code rows, {len(names)} names"
                         + (f", {len(cond)} conditions" if cond is not None else ""))
    base = out / shard_name(index)
    if len(names):
        save_npy(Path(f"{base}.codes.npy"), codes)
        if cond is not None:
            save_npy(Path(f"{base}.cond.npy"), cond)
        atomic_write_text(json.dumps(names), Path(f"{base}.names.json"))
    record = {"name": shard_name(index), "windows": len(names), **record}
    atomic_write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", Path(f"{base}.done.json"))
    return record


def read_shard_record(out: Path, index: int) -> dict | None:
    """The record of a finished shard ``index``, or None when it is not finished."""
    path = out / f"{shard_name(index)}.done.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable shard record ({exc}); delete it to redo the shard") from None


def remove_stale_temporaries(folder: Path, prefix: str) -> int:
    """Delete temporary files left by a killed writer (``.<prefix>*.tmp``); returns how many."""
    removed = 0
    for tmp in folder.glob(f".{prefix}*.tmp"):
        tmp.unlink(missing_ok=True)
        removed += 1
    return removed


# ---------------------------------------------------------------------- index
def write_index(out: Path, meta: dict) -> dict:
    meta = {"kind": CACHE_KIND, "version": CACHE_VERSION, **meta}
    atomic_write_text(json.dumps(meta, indent=2) + "\n", out / CACHE_META)
    return meta


def read_index(path: Path) -> dict:
    """The index of the complete cache at ``path``; a clear :class:`CheckpointError` otherwise
    (no cache, an interrupted one, or a listed shard that is missing or of the wrong size)."""
    meta_path = path / CACHE_META
    if not meta_path.is_file():
        if (path / PLAN_NAME).is_file():
            done = len(list(path.glob("shard-*.done.json")))
            raise CheckpointError(
                f"{path}: incomplete token cache ({done} shard(s) finished, no {CACHE_META}): "
                "rerun the same `aar tokenize-dataset` command to finish it"
            )
        raise CheckpointError(f"{path}: not a token cache (no {CACHE_META}; made by `aar tokenize-dataset`)")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{meta_path}: invalid JSON ({exc})") from None
    if meta.get("kind") != CACHE_KIND:
        raise CheckpointError(f"{path}: {CACHE_META} is not a token cache description")
    if meta.get("version", 1) > CACHE_VERSION:
        raise CheckpointError(f"{path}: token cache version {meta['version']} is newer than this aar reads")
    return meta


# ---------------------------------------------------------------------- reading
class TokenCache:
    """A complete token cache opened for reading; shards are memory-mapped.

    ``cache[i]`` / ``cache.batch(indices)`` give ``{"codes": LongTensor[B x L], "cond": ...}``
    where cond is ``Tensor[B x cond_dim]`` (float32), ``LongTensor[B]`` or None. Window names
    are read on first use (``names``), or a shard at a time (``shard_names``).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.meta = meta = read_index(self.path)
        self.shards = [s for s in meta["shards"] if s["windows"] > 0]
        self.codes, self.cond = [], []
        for shard in self.shards:
            base = self.path / shard["name"]
            self.codes.append(self._open(Path(f"{base}.codes.npy"), (shard["windows"], meta["seq_len"])))
            if meta["condition"] != "none":
                cond_shape = (shard["windows"], meta["cond_dim"]) if meta["condition"] == "clap" else (shard["windows"],)
                self.cond.append(self._open(Path(f"{base}.cond.npy"), cond_shape))
        self.offsets = np.cumsum([0] + [s["windows"] for s in self.shards])
        self._names: list[str] | None = None

    @staticmethod
    def _open(path: Path, shape: tuple) -> np.ndarray:
        try:
            array = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: unreadable shard ({exc})") from None
        if array.shape != shape:
            raise CheckpointError(f"{path}: shape {array.shape}, the index says {shape}")
        return array

    @property
    def condition(self) -> str:
        return self.meta["condition"]

    @property
    def cond_dim(self) -> int | None:
        return self.meta["cond_dim"]

    @property
    def class_names(self) -> list[str]:
        return list(self.meta["class_names"])

    @property
    def scales(self) -> list[int]:
        return list(self.meta["scales"])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def shard_names(self, shard: int) -> list[str]:
        path = self.path / f"{self.shards[shard]['name']}.names.json"
        try:
            names = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: unreadable shard ({exc})") from None
        if len(names) != self.shards[shard]["windows"]:
            raise CheckpointError(f"{path}: {len(names)} names, the index says {self.shards[shard]['windows']}")
        return names

    @property
    def names(self) -> list[str]:
        if self._names is None:
            self._names = [n for s in range(len(self.shards)) for n in self.shard_names(s)]
        return self._names

    def clip_name(self, index: int) -> str:
        """The clip window ``index`` comes from (its name without ``#window`` and any ``~view``)."""
        return clip_of(self.names[index])

    def _gather(self, arrays: list[np.ndarray], indices: np.ndarray, dtype) -> np.ndarray:
        """Rows ``indices`` (global) of the per-shard ``arrays``, read shard by shard."""
        shard = np.searchsorted(self.offsets, indices, side="right") - 1
        out = np.empty((len(indices),) + arrays[0].shape[1:], dtype=dtype)
        for s in np.unique(shard):
            rows = shard == s
            out[rows] = arrays[s][indices[rows] - self.offsets[s]]
        return out

    def batch(self, indices) -> dict:
        indices = np.asarray(indices, dtype=np.int64)
        return self._as_batch(self._gather(self.codes, indices, np.int16),
                              self._gather(self.cond, indices, self.cond[0].dtype) if self.cond else None)

    def _as_batch(self, codes: np.ndarray, cond: np.ndarray | None) -> dict:
        out = {"codes": torch.from_numpy(codes.astype(np.int64))}
        if self.condition == "none":
            out["cond"] = None
        else:
            out["cond"] = torch.from_numpy(cond.astype(np.float32 if self.condition == "clap" else np.int64))
        return out

    def __getitem__(self, index: int) -> dict:
        item = self.batch([index])
        return {k: (v[0] if v is not None else None) for k, v in item.items()}


def clip_of(window_name: str) -> str:
    return window_name.rsplit("#", 1)[0]


def split_cache(cache: TokenCache, fraction: float, max_windows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training, validation) window indices; see :func:`held_out_windows`."""
    val = held_out_windows(cache, fraction, max_windows, seed)
    return np.setdiff1d(np.arange(len(cache), dtype=np.int64), val), val


def held_out_windows(cache: TokenCache, fraction: float, max_windows: int, seed: int) -> np.ndarray:
    """Validation window indices (sorted): whole clips are held out in the order of a seeded hash
    of their names until about ``fraction`` of the windows (at most ``max_windows``) are.

    Names are read a shard at a time and only the clips with the smallest hashes are kept, so
    memory does not grow with the cache."""
    from aar.data.split import key_hash

    n = len(cache)
    target = 0 if fraction <= 0 or n < 2 else min(max_windows, max(1, round(fraction * n)), n - 1)
    if target == 0:
        return np.zeros(0, dtype=np.int64)
    # A clip is passed over only when it would hold out every window (more than n - target of
    # them), so the first ``keep`` clips by hash are always enough.
    keep = target + math.ceil(n / (n - target + 1))
    heap: list[tuple[float, int, str]] = []  # (-hash, -first window, clip): the largest hash on top
    members: dict[str, list[int]] = {}
    shards = tqdm(range(len(cache.shards)), desc="validation split", unit="shard", dynamic_ncols=True,
                  disable=len(cache.shards) < 64)  # a few seconds per thousand shards
    for s in shards:
        for row, name in enumerate(cache.shard_names(s)):
            clip, index = clip_of(name), int(cache.offsets[s]) + row
            if clip in members:
                members[clip].append(index)
                continue
            key = (-key_hash(clip, seed), -index, clip)
            if len(heap) < keep:
                heapq.heappush(heap, key)
            elif key > heap[0]:
                del members[heapq.heappushpop(heap, key)[2]]
            else:
                continue
            members[clip] = [index]
    val: list[int] = []
    for _, _, clip in sorted(heap, reverse=True):
        if len(val) >= target:
            break
        if len(val) + len(members[clip]) < n:
            val += members[clip]
    return np.asarray(sorted(val), dtype=np.int64)


# ---------------------------------------------------------------------- loaders
@dataclass
class _Cursor:
    epoch: int = 0
    position: int = 0


class TokenCacheLoader:
    """Endless, exactly resumable batches of a token cache for one process of a run, by random
    access (every window of the cache is reachable at every step; for caches that fit the page
    cache, e.g. the demo's).

    Each epoch is a seeded permutation of ``indices``; rank r of n takes every n-th entry and
    cuts it into batches (the incomplete last batch is dropped; a share smaller than one batch
    is repeated). ``state_dict`` is the position after the last batch handed out.
    """

    def __init__(self, cache: TokenCache, indices: np.ndarray, batch_size: int, seed: int = 0,
                 rank: int = 0, world_size: int = 1):
        if len(indices) == 0:
            raise ValueError("the token cache has no training windows")
        self.cache, self.indices = cache, np.asarray(indices, dtype=np.int64)
        self.batch_size, self.seed, self.rank, self.world_size = batch_size, seed, rank, world_size
        self.cursor = _Cursor()

    def _share(self, epoch: int) -> np.ndarray:
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.indices))
        share = self.indices[order][self.rank :: self.world_size]
        if len(share) == 0:
            share = self.indices[order][: 1]
        if len(share) < self.batch_size:
            share = np.resize(share, self.batch_size)
        return share

    def batches_per_epoch(self) -> int:
        return max(1, math.ceil(len(self.indices) / self.world_size) // self.batch_size)

    def __iter__(self):
        while True:
            share = self._share(self.cursor.epoch)
            start = self.cursor.position
            if start + self.batch_size > len(share):
                self.cursor = _Cursor(self.cursor.epoch + 1, 0)
                continue
            self.cursor = _Cursor(self.cursor.epoch, start + self.batch_size)
            yield self.cache.batch(share[start : start + self.batch_size])

    def state_dict(self) -> dict:
        return {"epoch": self.cursor.epoch, "position": self.cursor.position}

    def load_state_dict(self, state: dict, exact: bool = True) -> None:
        self.cursor = _Cursor(int(state["epoch"]), int(state["position"]) if exact else 0)


class StreamingTokenLoader:
    """Endless, exactly resumable batches of a token cache that read it a block of shards at a
    time, so memory holds one block whatever the size of the cache.

    Epoch ``e``: the shards in a seeded order, grouped in blocks of ``block_shards``; the
    training windows of a block (every window but ``exclude``) in a seeded order; the epoch's
    order is the blocks' one after the other. Rank r of n takes positions r, r + n, ... of it,
    every rank the same number (``total // n``), and cuts its share into batches (the incomplete
    last one dropped). Only this rank's rows of a block are read (through a memory map dropped
    after the block). ``state_dict`` is (epoch, batches handed out in it).
    """

    def __init__(self, cache: TokenCache, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                 exclude: np.ndarray | None = None, block_shards: int = 8):
        if batch_size < 1 or block_shards < 1:
            raise ValueError(f"batch_size and block_shards must be >= 1, got {batch_size} and {block_shards}")
        self.cache, self.batch_size, self.seed = cache, batch_size, seed
        self.rank, self.world_size, self.block_shards = rank, world_size, block_shards
        self.exclude = np.unique(np.asarray(exclude if exclude is not None else [], dtype=np.int64))
        sizes = np.diff(cache.offsets)
        excluded = np.bincount(np.searchsorted(cache.offsets, self.exclude, side="right") - 1, minlength=len(sizes))
        self.train_sizes = sizes - excluded[: len(sizes)]
        self.total = int(self.train_sizes.sum())
        if self.total == 0:
            raise ValueError("the token cache has no training windows")
        self.share_size = self.total // world_size
        self.cursor = _Cursor()

    def batches_per_epoch(self) -> int:
        return max(1, self.share_size // self.batch_size)

    def _blocks(self, epoch: int) -> list[np.ndarray]:
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.cache.shards))
        return [order[i : i + self.block_shards] for i in range(0, len(order), self.block_shards)]

    def _rank_rows(self, epoch: int, block_index: int, block: np.ndarray, start: int) -> np.ndarray:
        """Global window indices of this rank's part of ``block``, whose first window is at
        position ``start`` of the epoch's order."""
        offsets = self.cache.offsets
        rows = np.concatenate([np.arange(offsets[s], offsets[s + 1]) for s in block])
        if len(self.exclude):
            rows = rows[~np.isin(rows, self.exclude)]
        rows = rows[np.random.default_rng([self.seed, epoch, block_index]).permutation(len(rows))]
        first = (self.rank - start) % self.world_size
        return rows[first :: self.world_size]

    def _read(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Rows (global indices) in the given order, read shard by shard through fresh maps."""
        offsets, cache = self.cache.offsets, self.cache
        shard = np.searchsorted(offsets, rows, side="right") - 1
        seq_len = cache.meta["seq_len"]
        codes = np.empty((len(rows), seq_len), dtype=np.int16)
        cond = None
        if cache.condition != "none":
            cond = np.empty((len(rows),) + cache.cond[0].shape[1:], dtype=cache.cond[0].dtype)
        for s in np.unique(shard):
            mine = shard == s
            local = rows[mine] - offsets[s]
            base = cache.path / cache.shards[s]["name"]
            codes[mine] = np.load(f"{base}.codes.npy", mmap_mode="r")[local]
            if cond is not None:
                cond[mine] = np.load(f"{base}.cond.npy", mmap_mode="r")[local]
        return codes, cond

    def _epoch(self, epoch: int, skip: int):
        """This rank's windows of ``epoch`` from its ``skip``-th on, a block at a time."""
        start = 0
        taken = 0
        for b, block in enumerate(self._blocks(epoch)):
            size = int(self.train_sizes[block].sum())
            count = len(range((self.rank - start) % self.world_size, size, self.world_size))
            count = min(count, self.share_size - taken)
            if taken + count > skip and count > 0:
                rows = self._rank_rows(epoch, b, block, start)[:count][max(0, skip - taken):]
                yield self._read(rows)
            taken += count
            start += size
            if taken >= self.share_size:
                return

    def _batches(self, epoch: int, first_batch: int):
        """(batch number, codes, cond) of ``epoch`` from batch ``first_batch`` on."""
        b, n = self.batch_size, self.batches_per_epoch()
        if self.share_size < b:  # a share smaller than one batch is repeated to fill it
            codes, cond = self._read_all(epoch)
            reps = np.resize(np.arange(len(codes)), b)
            yield 0, codes[reps], (cond[reps] if cond is not None else None)
            return
        number, carry_codes, carry_cond = first_batch, None, None
        for codes, cond in self._epoch(epoch, first_batch * b):
            i = 0
            if carry_codes is not None:  # the rows left over from the last block start a batch
                i = b - len(carry_codes)
                if i > len(codes):  # a block smaller than the batch: carry on
                    carry_codes = np.concatenate([carry_codes, codes])
                    carry_cond = np.concatenate([carry_cond, cond]) if cond is not None else None
                    continue
                yield number, np.concatenate([carry_codes, codes[:i]]), (
                    np.concatenate([carry_cond, cond[:i]]) if cond is not None else None)
                number, carry_codes = number + 1, None
            while i + b <= len(codes) and number < n:
                yield number, codes[i : i + b], (cond[i : i + b] if cond is not None else None)
                i, number = i + b, number + 1
            if number >= n:
                return
            # copies, so that no view keeps this block alive while the next one is read
            carry_codes, carry_cond = codes[i:].copy(), (cond[i:].copy() if cond is not None else None)
            codes = cond = None

    def _read_all(self, epoch: int) -> tuple[np.ndarray, np.ndarray | None]:
        parts = list(self._epoch(epoch, 0))
        if not parts:  # more processes than windows: every rank reads the epoch's first window
            rows = self._rank_rows(epoch, 0, self._blocks(epoch)[0], self.rank)[:1]
            parts = [self._read(rows)]
        codes = np.concatenate([p[0] for p in parts])
        return codes, (np.concatenate([p[1] for p in parts]) if parts[0][1] is not None else None)

    def __iter__(self):
        while True:
            epoch, first = self.cursor.epoch, self.cursor.position
            for number, codes, cond in self._batches(epoch, first):
                batch = self.cache._as_batch(codes, cond)
                del codes, cond  # views of the block: the next block is read while this frame waits
                self.cursor = _Cursor(epoch, number + 1)
                yield batch
            self.cursor = _Cursor(epoch + 1, 0)

    def state_dict(self) -> dict:
        return {"epoch": self.cursor.epoch, "position": self.cursor.position}

    def load_state_dict(self, state: dict, exact: bool = True) -> None:
        self.cursor = _Cursor(int(state["epoch"]), int(state["position"]) if exact else 0)
