"""The token cache: a dataset encoded once by the tokenizer (and CLAP), read by AAR training,
so training never runs the tokenizer or CLAP.

The format, the readers and the loaders live in :mod:`aar.data.token_cache` (re-exported
here); this module adds what needs the tokenizer: :class:`TokenCache` with ``tokenizer()``,
:func:`encode_clips` (clips -> windows -> codes and conditions), :class:`TokenCacheWriter`
(windows from memory, e.g. synthetic caches) and the window helpers. The encoding driver of
``aar tokenize-dataset`` (several processes, resumable) is :func:`aar.train.tokenize.build_token_cache`.

Each clip gives its whole 1 s windows (at most ``max_windows``; a clip shorter than a window
gives one zero-padded window); all windows of a clip share the clip's condition (the CLAP
embedding of the whole clip at 48 kHz, as the release computes it, or its class).
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from aar.audio import resample
from aar.checkpoint import CheckpointError
from aar.data import token_cache as _store
from aar.data.token_cache import (  # noqa: F401  (re-exported: the cache's format and readers)
    CACHE_KIND,
    CACHE_META,
    COND_DTYPES,
    PLAN_NAME,
    TOKENIZER_SUBDIR,
    StreamingTokenLoader,
    TokenCacheLoader,
    held_out_windows,
    split_cache,
    write_index,
    write_shard,
)
from aar.tokenizer import SAT


class TokenCache(_store.TokenCache):
    """A complete token cache opened for reading (:class:`aar.data.token_cache.TokenCache`),
    with the tokenizer that made it."""

    def tokenizer(self) -> SAT:
        return SAT.from_pretrained(self.path / TOKENIZER_SUBDIR)


def build_token_cache(*args, **kwargs) -> dict | None:
    """Encode a dataset into a token cache: :func:`aar.train.tokenize.build_token_cache` (kept
    here for the callers that import it from this module)."""
    from aar.train.tokenize import build_token_cache as build

    return build(*args, **kwargs)


def cache_description(tokenizer: SAT, condition: str, cond_dim: int | None, class_names: list[str] | None) -> dict:
    """The index fields that describe what a cache holds (everything but its shards and origin)."""
    if tokenizer.config.codebook_size > np.iinfo(np.int16).max + 1:
        raise ValueError(f"codebook size {tokenizer.config.codebook_size} does not fit the cache's int16 codes")
    return {
        "scales": list(tokenizer.scales),
        "seq_len": sum(tokenizer.scales),
        "codebook_size": tokenizer.config.codebook_size,
        "condition": condition,
        "cond_dim": cond_dim,
        "class_names": list(class_names or []),
    }


# ---------------------------------------------------------------------- writing
class TokenCacheWriter:
    """Appends windows (codes, condition, name) held in memory and writes them in shards of
    ``shard_size`` windows (synthetic caches, benchmarks); datasets go through
    :func:`aar.train.tokenize.build_token_cache`."""

    def __init__(self, out: str | os.PathLike, tokenizer: SAT, condition: str, cond_dim: int | None = None,
                 class_names: list[str] | None = None, shard_size: int = 4096):
        self.out = Path(out)
        if (self.out / CACHE_META).exists():
            raise CheckpointError(f"{self.out}: already holds a token cache; choose another --out or delete it")
        self.describe = cache_description(tokenizer, condition, cond_dim, class_names)
        self.out.mkdir(parents=True, exist_ok=True)
        self.tokenizer, self.condition, self.shard_size = tokenizer, condition, shard_size
        self.shards: list[dict] = []
        self._codes, self._cond, self._names = [], [], []
        self._pending = 0

    @property
    def num_windows(self) -> int:
        return sum(s["windows"] for s in self.shards) + self._pending

    def add(self, codes: torch.Tensor | np.ndarray, cond: torch.Tensor | np.ndarray | None, names: list[str]) -> None:
        """``codes``: ``[N x L]``; ``cond``: ``[N x cond_dim]``, ``[N]`` class ids or None."""
        self._codes.append(np.asarray(codes.cpu() if isinstance(codes, torch.Tensor) else codes).astype(np.int16))
        if self.condition != "none":
            cond = np.asarray(cond.cpu() if isinstance(cond, torch.Tensor) else cond)
            self._cond.append(cond.astype(COND_DTYPES[self.condition]))
        self._names += names
        self._pending += len(names)
        while self._pending >= self.shard_size:
            self._flush(self.shard_size)

    def _flush(self, n: int) -> None:
        codes = np.concatenate(self._codes)
        cond = np.concatenate(self._cond) if self._cond else None
        self.shards.append(write_shard(self.out, len(self.shards), codes[:n],
                                       cond[:n] if cond is not None else None, self._names[:n], {}))
        self._codes, self._names = [codes[n:]], self._names[n:]
        self._cond = [cond[n:]] if cond is not None else []
        self._pending -= n

    def close(self, **info) -> dict:
        """Write the last shard, the tokenizer and ``cache.json``; returns the metadata."""
        if self._pending:
            self._flush(self._pending)
        self.tokenizer.save_pretrained(self.out / TOKENIZER_SUBDIR)
        shards = [{"name": s["name"], "windows": s["windows"]} for s in self.shards]
        return write_index(self.out, {**self.describe, "num_windows": sum(s["windows"] for s in shards),
                                      "shards": shards, **info})


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


@torch.inference_mode()
def encode_clips(tokenizer: SAT, names: list[str], wavs: list[torch.Tensor], read_rate: int, condition: str,
                 clap=None, label_index: dict[str, int] | None = None, views: int = 1,
                 max_windows: int | None = None, batch_size: int = 16) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Clips ``wavs`` (``Tensor[1 x T]`` at ``read_rate``, named ``names``) -> the int16 codes
    ``[N x L]`` of their windows (``views`` versions each, :func:`augmented_view`), their
    conditions (``[N x cond_dim]`` float16 CLAP embeddings of the whole clips, ``[N]`` int64
    classes of :func:`folder_label`, or None) and the window names ``<clip>#<window>[~<view>]``.
    Windows are encoded ``batch_size`` at a time."""
    sr, window = tokenizer.sample_rate, tokenizer.window_samples
    conds = None
    if condition == "clap":
        # CLAP's feature extractor crops clips longer than its input at a random place drawn from
        # numpy's global generator: seed it from the clips' names so that the embeddings do not
        # depend on what the process did before (or on how many processes share the work).
        state = np.random.get_state()
        np.random.seed(zlib.crc32("\0".join(names).encode()))
        try:
            conds = clap.embed_audio([w[0] for w in wavs], read_rate)
        finally:
            np.random.set_state(state)
        wavs = [torch.from_numpy(resample(w[0].numpy(), read_rate, sr))[None] for w in wavs]
    elif condition == "label":
        conds = torch.tensor([label_index[folder_label(n)] for n in names])
    windows = [clip_windows(augmented_view(w, v, n, sr), window, max_windows)
               for n, w in zip(names, wavs) for v in range(views)]
    counts = torch.tensor([len(w) for w in windows])
    batch = torch.cat(windows)
    codes = torch.cat([torch.cat(tokenizer.encode(part.to(tokenizer.device)), dim=1).cpu() for part in batch.split(batch_size)])
    cond_rows = None
    if conds is not None:
        cond_rows = conds.repeat_interleave(views, dim=0).repeat_interleave(counts, dim=0).numpy()
        cond_rows = cond_rows.astype(COND_DTYPES[condition])
    window_names = [f"{n}#{k}" + (f"~{v}" if v else "")
                    for (n, v), c in zip([(n, v) for n in names for v in range(views)], counts.tolist()) for k in range(c)]
    return codes.numpy().astype(np.int16), cond_rows, window_names
