"""Where training audio comes from: a folder of files, the AudioSet layout, or WebDataset shards.

:func:`open_source` checks the location up front (missing or unreadable root, nothing to
read) and raises :class:`DataError` naming it, so a run fails before any model is built.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch

from aar.audio.io import AUDIO_EXTENSIONS, AudioError, load_audio
from aar.data.decode import decode_bytes

log = logging.getLogger("aar.data")

SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")
# Fields of a WebDataset sample that may hold the audio, in order of preference.
AUDIO_FIELDS = tuple(ext.lstrip(".") for ext in AUDIO_EXTENSIONS) + ("audio",)


class DataError(ValueError):
    """The training data cannot be used (missing root, no audio, unreadable shard). Names the path."""


@dataclass
class FileSource:
    """A fixed list of audio files. ``kind`` is ``"folder"`` or ``"audioset"``; ``missing`` counts
    AudioSet rows whose file is absent (skipped)."""

    root: Path
    files: list[Path]
    kind: str = "folder"
    missing: int = 0

    def __len__(self) -> int:
        return len(self.files)

    def name(self, index: int) -> str:
        path = self.files[index]
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def read(self, index: int, sample_rate: int) -> torch.Tensor:
        """Decode file ``index`` as mono ``Tensor[1 x T]`` at ``sample_rate``; raises AudioError."""
        return load_audio(self.files[index], sample_rate)

    def describe(self) -> str:
        extra = f", {self.missing} listed segments without a file skipped" if self.missing else ""
        return f"{self.kind} {self.root}: {len(self.files)} files{extra}"


@dataclass
class ShardSource:
    """WebDataset tar shards (local paths or any URL ``webdataset.gopen`` opens: http(s), pipe:, ...).
    A sample's audio is its first field named after an audio extension (flac, wav, mp3, ...)."""

    urls: list[str]
    kind: str = field(default="webdataset", init=False)

    def __len__(self) -> int:
        return len(self.urls)

    def samples(self, url: str) -> Iterator[dict]:
        """Raw samples of one shard (``__key__`` plus bytes per field); DataError if it is unreadable."""
        from webdataset.tariterators import tarfile_samples

        try:
            yield from tarfile_samples([{"url": url}])
        except Exception as exc:  # gopen/tarfile raise many types; the shard is what the user must fix
            raise DataError(f"{url}: cannot read WebDataset shard ({type(exc).__name__}: {exc})") from None

    def describe(self) -> str:
        return f"webdataset: {len(self.urls)} shard(s), first {self.urls[0]}"


def audio_field(sample: dict) -> str | None:
    """Name of the field holding the audio of a WebDataset sample, or None."""
    for name in AUDIO_FIELDS:
        if name in sample:
            return name
    return None


def _is_shard_spec(spec: str) -> bool:
    return "://" in spec or spec.startswith("pipe:") or "::" in spec or spec.endswith(SHARD_SUFFIXES)


def _check_readable_dir(root: Path):
    if not root.exists():
        raise DataError(f"{root}: no such file or directory")
    if not os.access(root, os.R_OK | os.X_OK):
        raise DataError(f"{root}: permission denied (cannot list the folder)")


def folder_source(root: str | os.PathLike) -> FileSource:
    """Every audio file under ``root`` (recursive, sorted; by extension)."""
    root = Path(root)
    _check_readable_dir(root)
    if root.is_file():
        if root.suffix.lower() not in AUDIO_EXTENSIONS:
            raise DataError(f"{root}: not an audio file or folder (audio extensions: {', '.join(AUDIO_EXTENSIONS)})")
        return FileSource(root.parent, [root])
    try:
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
    except OSError as exc:
        raise DataError(f"{root}: cannot list the folder ({exc})") from None
    if not files:
        raise DataError(f"{root}: no audio files found (looked for {', '.join(AUDIO_EXTENSIONS)}, recursively)")
    return FileSource(root, files)


def read_audioset_csv(csv_path: str | os.PathLike) -> list[str]:
    """YouTube ids of an AudioSet segments CSV (``# ...`` header lines, then
    ``YTID, start_seconds, end_seconds, "labels"``), in file order, without duplicates."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: AudioSet segments CSV not found")
    ids, seen = [], set()
    try:
        with open(csv_path, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                ytid = line.split(",", 1)[0].strip()
                if ytid and ytid not in seen:
                    seen.add(ytid)
                    ids.append(ytid)
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{csv_path}: cannot read AudioSet CSV ({exc})") from None
    if not ids:
        raise DataError(f"{csv_path}: no segments listed")
    return ids


def audioset_source(root: str | os.PathLike, csv_path: str | os.PathLike) -> FileSource:
    """The AudioSet layout: ``root/Y<YTID>.mp3`` for each row of the segments CSV. Rows whose file
    is missing are skipped and counted (logged once, here)."""
    root = Path(root)
    _check_readable_dir(root)
    ids = read_audioset_csv(csv_path)
    try:
        present = set(os.listdir(root))
    except OSError as exc:
        raise DataError(f"{root}: cannot list the folder ({exc})") from None
    names = [f"Y{ytid}.mp3" for ytid in ids]
    files = [root / n for n in names if n in present]
    missing = len(names) - len(files)
    if not files:
        raise DataError(f"{root}: none of the {len(ids)} segments of {csv_path} has its Y<YTID>.mp3 file here")
    if missing:
        log.warning("AudioSet: %d of %d segments in %s have no file in %s; skipped", missing, len(ids), csv_path, root)
    return FileSource(root, files, kind="audioset", missing=missing)


def shard_source(spec: str | list[str]) -> ShardSource:
    """Shards from a brace pattern (``data/shard-{000..099}.tar``), ``::``-joined list, or list of
    paths/URLs. Local shards must exist."""
    from webdataset.shardlists import expand_urls

    urls = [u for s in ([spec] if isinstance(spec, str) else spec) for u in expand_urls(str(s))]
    if not urls:
        raise DataError(f"{spec}: no WebDataset shards")
    for url in urls:
        if "://" in url or url.startswith("pipe:"):
            continue
        path = Path(url[len("file:") :] if url.startswith("file:") else url)
        if not path.is_file():
            raise DataError(f"{url}: WebDataset shard not found")
        if not os.access(path, os.R_OK):
            raise DataError(f"{url}: permission denied")
    return ShardSource(urls)


def open_source(data: str | os.PathLike, audioset_csv: str | os.PathLike | None = None) -> FileSource | ShardSource:
    """Resolve ``data``: with ``audioset_csv`` it is the AudioSet audio folder; a ``.tar`` path,
    brace pattern or URL means WebDataset shards; otherwise a folder (or single file) of audio."""
    if audioset_csv is not None:
        return audioset_source(data, audioset_csv)
    spec = str(data)
    if _is_shard_spec(spec):
        return shard_source(spec)
    return folder_source(spec)


def read_shard_audio(sample: dict, sample_rate: int) -> torch.Tensor:
    """Decode the audio field of a WebDataset sample as ``Tensor[1 x T]``; raises AudioError."""
    name = audio_field(sample)
    if name is None:
        fields = sorted(k for k in sample if not k.startswith("__"))
        raise AudioError(f"{sample.get('__key__')}: no audio field (has {', '.join(fields) or 'nothing'})")
    return decode_bytes(sample[name], f"{sample.get('__url__', '')}:{sample.get('__key__')}.{name}", sample_rate)
