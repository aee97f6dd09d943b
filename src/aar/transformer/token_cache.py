"""The token cache: a dataset encoded once by the tokenizer (and CLAP), read by AAR training
through memory maps, so training never runs the tokenizer or CLAP.

Layout of a cache folder::

    cache.json                   what is in it (written last: a folder without it is incomplete)
    tokenizer/                   the SAT that made the codes (SAT.from_pretrained)
    shard-00000.codes.npy        int16 [N x L]: every scale's codes of N one-second windows, concatenated
    shard-00000.cond.npy         float16 [N x cond_dim] CLAP embeddings, or int64 [N] class ids
                                 (absent for condition "none")
    shard-00000.names.json       where each window comes from: "<clip name>#<window index>"

Each clip gives its whole 1 s windows (at most ``max_windows``; a clip shorter than a window
gives one zero-padded window); all windows of a clip share the clip's condition (the CLAP
embedding of the whole clip at 48 kHz, as the release computes it, or its class).
"""

from __future__ import annotations

import json
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from aar.audio import resample
from aar.checkpoint import CheckpointError, atomic_path, atomic_write_text
from aar.tokenizer import SAT

CACHE_META = "cache.json"
CACHE_KIND = "aar-token-cache"
TOKENIZER_SUBDIR = "tokenizer"


# ---------------------------------------------------------------------- writing
class TokenCacheWriter:
    """Appends windows (codes, condition, name) and writes them in shards of ``shard_size``."""

    def __init__(self, out: str | os.PathLike, tokenizer: SAT, condition: str, cond_dim: int | None = None,
                 class_names: list[str] | None = None, shard_size: int = 4096):
        self.out = Path(out)
        if (self.out / CACHE_META).exists():
            raise CheckpointError(f"{self.out}: already holds a token cache; choose another --out or delete it")
        self.out.mkdir(parents=True, exist_ok=True)
        self.tokenizer, self.condition = tokenizer, condition
        self.cond_dim, self.class_names = cond_dim, list(class_names or [])
        self.shard_size = shard_size
        if tokenizer.config.codebook_size > np.iinfo(np.int16).max + 1:
            raise ValueError(f"codebook size {tokenizer.config.codebook_size} does not fit the cache's int16 codes")
        self.seq_len = sum(tokenizer.scales)
        self.shards: list[dict] = []
        self._codes, self._cond, self._names = [], [], []
        self._pending = 0

    @property
    def num_windows(self) -> int:
        return sum(s["windows"] for s in self.shards) + self._pending

    def add(self, codes: torch.Tensor, cond: torch.Tensor | None, names: list[str]) -> None:
        """``codes``: ``LongTensor[N x L]``; ``cond``: ``Tensor[N x cond_dim]``, ``LongTensor[N]`` or None."""
        self._codes.append(codes.cpu().numpy().astype(np.int16))
        if self.condition != "none":
            self._cond.append(cond.cpu().numpy())
        self._names += names
        self._pending += len(names)
        while self._pending >= self.shard_size:
            self._flush(self.shard_size)

    def _flush(self, n: int) -> None:
        codes = np.concatenate(self._codes)
        cond = np.concatenate(self._cond) if self._cond else None
        name = f"shard-{len(self.shards):05d}"
        _save_npy(self.out / f"{name}.codes.npy", codes[:n])
        if cond is not None:
            dtype = np.float16 if self.condition == "clap" else np.int64
            _save_npy(self.out / f"{name}.cond.npy", cond[:n].astype(dtype))
        atomic_write_text(json.dumps(self._names[:n]), self.out / f"{name}.names.json")
        self.shards.append({"name": name, "windows": n})
        self._codes, self._names = [codes[n:]], self._names[n:]
        self._cond = [cond[n:]] if cond is not None else []
        self._pending -= n

    def close(self, **info) -> dict:
        """Write the last shard, the tokenizer and ``cache.json``; returns the metadata."""
        if self._pending:
            self._flush(self._pending)
        self.tokenizer.save_pretrained(self.out / TOKENIZER_SUBDIR)
        meta = {
            "kind": CACHE_KIND,
            "version": 1,
            "scales": self.tokenizer.scales,
            "seq_len": self.seq_len,
            "codebook_size": self.tokenizer.config.codebook_size,
            "condition": self.condition,
            "cond_dim": self.cond_dim,
            "class_names": self.class_names,
            "num_windows": sum(s["windows"] for s in self.shards),
            "shards": self.shards,
            **info,
        }
        atomic_write_text(json.dumps(meta, indent=2) + "\n", self.out / CACHE_META)
        return meta


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array)


def clip_windows(wav: torch.Tensor, window: int, max_windows: int | None) -> torch.Tensor:
    """``Tensor[1 x T]`` -> its whole windows ``Tensor[n x 1 x window]`` (a clip shorter than one
    window gives one zero-padded window; at most ``max_windows``)."""
    t = wav.shape[-1]
    if t < window:
        return F.pad(wav, (0, window - t))[None]
    n = t // window if max_windows is None else min(t // window, max_windows)
    return wav[:, : n * window].reshape(1, n, window).transpose(0, 1)


MAX_VIEW_DELAY_SECONDS = 0.03


def augmented_view(wav: torch.Tensor, view: int, key: str, sample_rate: int) -> torch.Tensor:
    """View ``view`` of the clip ``wav`` ``Tensor[1 x T]`` for a token cache with several views.

    View 0 is the clip itself. Every other view changes what the tokenizer sees but not what
    a listener hears: odd views invert the polarity, and views from 2 on also start the
    window grid later, by a delay of 1 sample to ``MAX_VIEW_DELAY_SECONDS`` drawn from a seeded
    hash of ``key`` (the clip's name) and ``view`` (silence before, the clip's last samples
    dropped, so the length is kept). The tokens of such a view keep the coarse scales of the
    clip's and differ in the fine ones, so a transformer trained on several views memorises
    less.
    """
    if view == 0:
        return wav
    out = -wav if view % 2 else wav
    if view >= 2:
        max_delay = max(1, int(MAX_VIEW_DELAY_SECONDS * sample_rate))
        delay = 1 + zlib.crc32(f"{key}\0{view}".encode()) % max_delay
        out = F.pad(out, (delay, 0))[..., : wav.shape[-1]]
    return out


def folder_label(name: str) -> str:
    """The class of a clip named ``<class>/.../file.wav`` (relative to the data root)."""
    parts = Path(name).parts
    if len(parts) < 2:
        raise ValueError(f"{name}: label from folders needs files in class sub-folders (<data>/<class>/file.wav)")
    return parts[0]


def build_token_cache(
    tokenizer: SAT,
    source,
    out: str | os.PathLike,
    condition: str = "none",
    clap=None,
    batch_size: int = 16,
    shard_size: int = 4096,
    max_windows: int | None = None,
    views: int = 1,
) -> dict:
    """Encode every clip of ``source`` (an :mod:`aar.data` source) into a token cache at ``out``.

    ``condition``: ``"clap"`` (needs ``clap``, a :class:`~aar.conditioning.ClapEmbedder`),
    ``"label"`` (the class is the clip's top-level folder) or ``"none"``. ``views`` > 1 stores
    that many versions of every window (:func:`augmented_view`; all with the clip's condition,
    named ``<clip>#<window>~<view>`` so that :func:`split_cache` keeps a clip's views on one
    side). Returns the metadata.
    """
    if views < 1:
        raise ValueError(f"views must be >= 1, got {views}")
    from aar.data import FailureLog, iter_clips
    from aar.data.sources import FileSource

    if condition == "clap" and clap is None:
        raise ValueError("condition 'clap' needs a CLAP model")
    class_names = None
    if condition == "label":
        if not isinstance(source, FileSource):
            raise ValueError("labels from folders need a folder of audio files, not WebDataset shards")
        class_names = sorted({folder_label(source.name(i)) for i in range(len(source))})
    sr, window = tokenizer.sample_rate, tokenizer.window_samples
    writer = TokenCacheWriter(out, tokenizer, condition, clap.dim if clap is not None else None, class_names, shard_size)
    label_index = {n: i for i, n in enumerate(class_names or [])}
    read_rate = 48_000 if condition == "clap" else sr
    failures = FailureLog()
    clips = iter_clips(source, sample_rate=read_rate, failures=failures)
    total = len(source) if isinstance(source, FileSource) else None
    num_clips = 0
    with tqdm(total=total, desc="tokenize", unit="clip", dynamic_ncols=True) as bar:
        for chunk in _chunks(clips, batch_size):
            names = [n for n, _ in chunk]
            wavs = [w for _, w in chunk]
            conds = None
            if condition == "clap":
                conds = clap.embed_audio([w[0] for w in wavs], read_rate)
                wavs = [torch.from_numpy(resample(w[0].numpy(), read_rate, sr))[None] for w in wavs]
            elif condition == "label":
                conds = torch.tensor([label_index[folder_label(n)] for n in names])
            windows = [clip_windows(augmented_view(w, v, n, sr), window, max_windows)
                       for n, w in zip(names, wavs) for v in range(views)]
            counts = [len(w) for w in windows]
            batch = torch.cat(windows)
            codes = torch.cat([torch.cat(tokenizer.encode(part), dim=1).cpu() for part in batch.split(batch_size)])
            if conds is not None:
                conds = conds.repeat_interleave(views, dim=0)
            cond_rows = conds.repeat_interleave(torch.tensor(counts), dim=0) if conds is not None else None
            view_names = [(n, v) for n in names for v in range(views)]
            window_names = [f"{n}#{k}" + (f"~{v}" if v else "") for (n, v), c in zip(view_names, counts) for k in range(c)]
            writer.add(codes, cond_rows, window_names)
            num_clips += len(chunk)
            bar.update(len(chunk))
    if writer.num_windows == 0:
        raise ValueError("no decodable audio in the data: nothing to cache")
    describe = source.describe() if hasattr(source, "describe") else str(source)
    return writer.close(num_clips=num_clips, views=views, source=describe, undecodable=list(failures.reasons.values()),
                        clap=str(clap.path) if clap is not None else None)


def _chunks(items: Iterator, size: int) -> Iterator[list]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# ---------------------------------------------------------------------- reading
class TokenCache:
    """A token cache opened for reading; shards are memory-mapped.

    ``cache[i]`` / ``cache.batch(indices)`` give ``{"codes": LongTensor[B x L], "cond": ...}``
    where cond is ``Tensor[B x cond_dim]`` (float32), ``LongTensor[B]`` or None.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        meta_path = self.path / CACHE_META
        if not meta_path.is_file():
            raise CheckpointError(f"{self.path}: not a token cache (no {CACHE_META}; made by `aar tokenize-dataset`)")
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{meta_path}: invalid JSON ({exc})") from None
        if meta.get("kind") != CACHE_KIND:
            raise CheckpointError(f"{self.path}: {CACHE_META} is not a token cache description")
        self.meta = meta
        self.codes, self.cond, names = [], [], []
        for shard in meta["shards"]:
            base = self.path / shard["name"]
            try:
                self.codes.append(np.load(f"{base}.codes.npy", mmap_mode="r"))
                if meta["condition"] != "none":
                    self.cond.append(np.load(f"{base}.cond.npy", mmap_mode="r"))
                names += json.loads(Path(f"{base}.names.json").read_text())
            except (OSError, ValueError) as exc:
                raise CheckpointError(f"{base}: unreadable shard ({exc})") from None
        self.names = names
        self.offsets = np.cumsum([0] + [len(c) for c in self.codes])

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

    def clip_name(self, index: int) -> str:
        """The clip window ``index`` comes from (its name without ``#window`` and any ``~view``)."""
        return self.names[index].rsplit("#", 1)[0]

    def tokenizer(self) -> SAT:
        return SAT.from_pretrained(self.path / TOKENIZER_SUBDIR)

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
        out = {"codes": torch.from_numpy(self._gather(self.codes, indices, np.int64))}
        if self.condition == "none":
            out["cond"] = None
        else:
            dtype = np.float32 if self.condition == "clap" else np.int64
            out["cond"] = torch.from_numpy(self._gather(self.cond, indices, dtype))
        return out

    def __getitem__(self, index: int) -> dict:
        item = self.batch([index])
        return {k: (v[0] if v is not None else None) for k, v in item.items()}


def split_cache(cache: TokenCache, fraction: float, max_windows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training, validation) window indices; whole clips are held out, chosen by a seeded hash
    of their names, until about ``fraction`` of the windows (at most ``max_windows``) are."""
    from aar.data.split import key_hash

    n = len(cache)
    target = 0 if fraction <= 0 or n < 2 else min(max_windows, max(1, round(fraction * n)), n - 1)
    clips: dict[str, list[int]] = {}
    for i in range(n):
        clips.setdefault(cache.clip_name(i), []).append(i)
    val: list[int] = []
    for name in sorted(clips, key=lambda c: key_hash(c, seed)):
        if len(val) >= target:
            break
        if len(val) + len(clips[name]) < n:
            val += clips[name]
    val = np.asarray(sorted(val), dtype=np.int64)
    return np.setdiff1d(np.arange(n, dtype=np.int64), val), val


@dataclass
class _Cursor:
    epoch: int = 0
    position: int = 0


class TokenCacheLoader:
    """Endless, exactly resumable batches of a token cache for one process of a run.

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
