"""On-disk cache of what a reference folder gives under one backbone.

A reference set is embedded once: its FAD statistics (``mu``, ``sigma``), its classifier logits
(for KL) and the list of files that could not be read are stored in one ``.npz`` whose name is
a hash of the backbone, its weight file and every reference file's path, size and modification
time. Any change to those makes a new entry; stale entries are never read.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aar.checkpoint import atomic_path
from aar.metrics.frechet import EmbeddingStats

# 2: VGGish embeddings are taken before torchvggish's final ReLU, as the FAD tool-chains do, so
# entries written by format 1 hold other statistics.
CACHE_FORMAT = 2


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/aar/evaluate`` (``~/.cache/aar/evaluate`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "aar" / "evaluate"


def _file_identity(path: Path) -> list:
    stat = path.stat()
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


def _weights_identity(weights: str) -> list:
    path = Path(weights)
    if path.is_file():
        return _file_identity(path)
    if path.is_dir():
        return [_file_identity(p) for p in sorted(path.iterdir()) if p.is_file()]
    return [weights]


@dataclass
class ReferenceEntry:
    """What the cache holds for one reference set under one backbone."""

    stats: EmbeddingStats | None
    names: list[str]
    logits: np.ndarray | None
    embedding_count: int
    skipped: list[dict]


class ReferenceCache:
    """Reference entries under ``directory``."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)

    def key(self, clips: dict[str, Path], backbone_name: str, weights: str) -> str:
        identity = {
            "format": CACHE_FORMAT,
            "backbone": backbone_name,
            "weights": _weights_identity(weights),
            "files": [[name, *_file_identity(path)] for name, path in sorted(clips.items())],
        }
        return hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:24]

    def path(self, key: str) -> Path:
        return self.directory / f"reference-{key}.npz"

    def load(self, key: str) -> ReferenceEntry | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path) as data:
                stats = (
                    EmbeddingStats(mu=data["mu"], sigma=data["sigma"], count=int(data["count"]))
                    if "mu" in data.files
                    else None
                )
                return ReferenceEntry(
                    stats=stats,
                    names=[str(n) for n in data["names"]],
                    logits=data["logits"] if "logits" in data.files else None,
                    embedding_count=int(data["embedding_count"]),
                    skipped=json.loads(str(data["skipped"])),
                )
        except (OSError, KeyError, ValueError):
            return None  # unreadable entry: recompute and overwrite

    def save(self, key: str, entry: ReferenceEntry) -> Path:
        arrays = {
            "names": np.array(entry.names, dtype=str),
            "embedding_count": np.int64(entry.embedding_count),
            "skipped": np.array(json.dumps(entry.skipped)),
        }
        if entry.stats is not None:
            arrays.update(mu=entry.stats.mu, sigma=entry.stats.sigma, count=np.int64(entry.stats.count))
        if entry.logits is not None:
            arrays["logits"] = entry.logits
        path = self.path(key)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        return path
