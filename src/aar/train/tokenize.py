"""``aar tokenize-dataset``'s driver: encode a dataset into a token cache with one process or
every process of torchrun, resumably, with a result that does not depend on either.

The source is cut into work units, fixed by the source alone: ``shard_clips`` consecutive
files of a folder or of the AudioSet layout, or one WebDataset shard. Unit ``k`` becomes
cache shard ``k``; process ``r`` of ``n`` encodes units ``r, r + n, ...`` in batches and writes
their shards (atomically, their record last). When every process is done, rank 0 writes the
tokenizer and the index (``cache.json``). A rerun of the same command skips finished shards
and redoes unfinished ones; ``tokenize.json`` holds the settings so that a rerun with other
ones is refused instead of mixing two caches.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from aar.checkpoint import CheckpointError, atomic_write_text
from aar.data import FailureLog, iter_clips
from aar.data.sources import FileSource, ShardSource
from aar.data.token_cache import (
    CACHE_META,
    PLAN_NAME,
    TOKENIZER_SUBDIR,
    read_shard_record,
    remove_stale_temporaries,
    shard_name,
    write_index,
    write_shard,
)
from aar.tokenizer import SAT
from aar.transformer.token_cache import cache_description, encode_clips, folder_label

log = logging.getLogger("aar.tokenize")

PLAN_KIND = "aar-tokenize-run"
CLAP_RATE = 48_000


@dataclass
class Processes:
    """This process's place among those that tokenize together. ``barrier`` is None when they
    share no process group (one process, or independent jobs finished by ``--merge``)."""

    rank: int = 0
    world_size: int = 1
    barrier: Callable[[], None] | None = None

    def wait(self):
        if self.barrier is not None:
            self.barrier()


def join_processes(timeout_hours: float = 72.0) -> Processes:
    """The processes of this run from torchrun's environment. Under torchrun they join a gloo
    group (used only to wait for each other at the end, so its timeout is long: ranks finish
    their shares at different times). ``RANK``/``WORLD_SIZE`` without ``MASTER_ADDR`` (separate
    jobs) give the share without a group; ``--merge`` then writes the index."""
    import torch.distributed as dist

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if not 0 <= rank < world_size:
        raise ValueError(f"RANK {rank} is not in 0..WORLD_SIZE-1 ({world_size})")
    if world_size == 1 or "MASTER_ADDR" not in os.environ:
        return Processes(rank, world_size)
    if not dist.is_initialized():
        dist.init_process_group("gloo", rank=rank, world_size=world_size, timeout=timedelta(hours=timeout_hours))
    return Processes(rank, world_size, dist.barrier)


def work_units(source: FileSource | ShardSource, shard_clips: int) -> list:
    """The source cut into units: index ranges of ``shard_clips`` files, or single shard URLs."""
    if isinstance(source, FileSource):
        return [range(k, min(k + shard_clips, len(source))) for k in range(0, len(source), shard_clips)]
    return list(source.urls)


def tokenizer_fingerprint(tokenizer: SAT) -> str:
    """A hash of the tokenizer's configuration and weights (a rerun must use the same one)."""
    digest = hashlib.sha256(json.dumps(tokenizer.config.to_dict(), sort_keys=True).encode())
    for name, tensor in sorted(tokenizer.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _check_plan(out: Path, plan: dict) -> None:
    """Write the run's settings, or check them against those of the run being continued."""
    path = out / PLAN_NAME
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{path}: invalid JSON ({exc}); delete the folder to start again") from None
        changed = [f"{k} {old.get(k)!r} -> {plan[k]!r}" for k in plan if old.get(k) != plan[k]]
        if changed:
            raise CheckpointError(
                f"{out}: holds an unfinished token cache made with other settings ({'; '.join(changed)}); "
                "rerun with the same ones or choose another --out"
            )
        return
    atomic_write_text(json.dumps(plan, indent=2) + "\n", path)


def _unit_clips(source, unit, read_rate: int, failures: FailureLog, threads: int = 1):
    """``(name, wav)`` of the decodable clips of ``unit``, in order; the others (undecodable, or
    with NaN or infinite samples: the audio reader refuses them) are recorded in ``failures``.
    With ``threads`` > 1 the files of a folder are decoded that many at a time, ahead of the
    encoder (decoding and resampling run outside the GIL), in the same order."""
    if isinstance(source, ShardSource):
        yield from iter_clips(ShardSource([unit]), sample_rate=read_rate, failures=failures)
        return
    if threads <= 1:
        yield from iter_clips(source, sample_rate=read_rate, failures=failures, indices=unit)
        return

    def read(index: int):
        own = FailureLog()
        return list(iter_clips(source, sample_rate=read_rate, failures=own, indices=[index])), own.reasons

    with ThreadPoolExecutor(threads) as pool:
        ahead: deque = deque()
        indices = iter(unit)
        for index in indices:
            ahead.append(pool.submit(read, index))
            if len(ahead) >= 2 * threads:
                break
        while ahead:
            clips, reasons = ahead.popleft().result()
            for index in indices:
                ahead.append(pool.submit(read, index))
                break
            failures.merge(reasons)
            yield from clips


def _encode_unit(source, unit, index: int, out: Path, settings: dict, tokenizer: SAT, clap,
                 label_index: dict, bar, decode_threads: int = 1) -> dict:
    """Encode work unit ``index`` and write it as shard ``index``; returns the shard's record."""
    failures = FailureLog()
    codes, cond, names = [], [], []
    chunk: list[tuple[str, torch.Tensor]] = []
    clips = 0
    read_rate = CLAP_RATE if settings["condition"] == "clap" else tokenizer.sample_rate

    def encode(chunk):
        c, k, n = encode_clips(tokenizer, [n for n, _ in chunk], [w for _, w in chunk], read_rate,
                               settings["condition"], clap, label_index, settings["views"],
                               settings["max_windows"], settings["batch_size"])
        codes.append(c)
        if k is not None:
            cond.append(k)
        names.extend(n)

    for item in _unit_clips(source, unit, read_rate, failures, decode_threads):
        chunk.append(item)
        clips += 1
        if len(chunk) == settings["batch_size"]:
            encode(chunk)
            bar.update(len(chunk))
            chunk = []
    if chunk:
        encode(chunk)
    bar.update(len(chunk) + (len(failures) if isinstance(source, FileSource) else 0))
    seq_len = sum(tokenizer.scales)
    all_codes = np.concatenate(codes) if codes else np.zeros((0, seq_len), np.int16)
    all_cond = np.concatenate(cond) if cond else None
    return write_shard(out, index, all_codes, all_cond, names, {"clips": clips, "undecodable": failures.reasons})


def build_token_cache(
    tokenizer: SAT,
    source,
    out: str | os.PathLike,
    condition: str = "none",
    clap=None,
    batch_size: int = 16,
    shard_clips: int = 1024,
    max_windows: int | None = None,
    views: int = 1,
    processes: Processes | None = None,
    merge: bool = True,
    decode_threads: int = 1,
) -> dict | None:
    """Encode every clip of ``source`` (an :mod:`aar.data` source) into a token cache at ``out``
    (this process's share of it under several processes; see the module's description).

    ``condition``: ``"clap"`` (needs ``clap``, a :class:`~aar.conditioning.ClapEmbedder`),
    ``"label"`` (the class is the clip's top-level folder) or ``"none"``. ``views`` > 1 stores
    that many versions of every window (:func:`~aar.transformer.token_cache.augmented_view`; all
    with the clip's condition, named ``<clip>#<window>~<view>`` so that the validation split
    keeps a clip's views on one side). ``shard_clips``: files per shard (a WebDataset shard
    gives one cache shard). With ``merge`` rank 0 writes the index once every shard is done.
    ``decode_threads``: files decoded ahead of the encoder at once (the cache is the same for any).
    Returns the index (None on the other ranks, or without ``merge``).
    """
    processes = processes or Processes()
    settings = _settings(tokenizer, source, condition, clap, batch_size, shard_clips, max_windows, views)
    out = Path(out)
    if (out / CACHE_META).exists():
        raise CheckpointError(f"{out}: already holds a complete token cache; choose another --out or delete it")
    out.mkdir(parents=True, exist_ok=True)
    _check_plan(out, settings)
    units = work_units(source, shard_clips)
    mine = list(range(processes.rank, len(units), processes.world_size))
    for k in mine:  # what a killed run of this share left half-written
        remove_stale_temporaries(out, f"{shard_name(k)}.")
    label_index = {n: i for i, n in enumerate(settings["class_names"])}
    done = {k for k in mine if read_shard_record(out, k) is not None}
    todo = [k for k in mine if k not in done]
    if done:
        log.info("continuing %s: %d of this process's %d shard(s) already finished", out, len(done), len(mine))
    total = sum(len(units[k]) for k in mine) if isinstance(source, FileSource) else None
    initial = sum(len(units[k]) for k in done) if isinstance(source, FileSource) else 0
    label = "tokenize" if processes.world_size == 1 else f"tokenize (rank {processes.rank}/{processes.world_size})"
    with tqdm(total=total, initial=initial, desc=label, unit="clip", dynamic_ncols=True,
              disable=processes.rank != 0 and processes.barrier is not None) as bar:
        for k in todo:
            _encode_unit(source, units[k], k, out, settings, tokenizer, clap, label_index, bar, decode_threads)
    processes.wait()
    meta = None
    if merge and processes.rank == 0:
        meta = merge_token_cache(out, tokenizer)
    processes.wait()
    return meta


def _settings(tokenizer: SAT, source, condition: str, clap, batch_size: int, shard_clips: int,
              max_windows: int | None, views: int) -> dict:
    """What the cache is made with (``tokenize.json``); checks the arguments."""
    if condition not in ("clap", "label", "none"):
        raise ValueError(f"condition must be clap, label or none, got {condition!r}")
    if condition == "clap" and clap is None:
        raise ValueError("condition 'clap' needs a CLAP model")
    for name, value in (("batch_size", batch_size), ("shard_clips", shard_clips), ("views", views)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if max_windows is not None and max_windows < 1:
        raise ValueError(f"max_windows must be >= 1, got {max_windows}")
    class_names = []
    if condition == "label":
        if not isinstance(source, FileSource):
            raise ValueError("labels from folders need a folder of audio files, not WebDataset shards")
        class_names = sorted({folder_label(source.name(i)) for i in range(len(source))})
    return {
        "kind": PLAN_KIND,
        "source": source.describe() if hasattr(source, "describe") else str(source),
        "units": len(work_units(source, shard_clips)),
        "shard_clips": shard_clips,
        "batch_size": batch_size,
        "views": views,
        "max_windows": max_windows,
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "clap": str(Path(clap.path).resolve()) if clap is not None else None,
        **cache_description(tokenizer, condition, clap.dim if clap is not None else None, class_names),
    }


def merge_token_cache(out: str | os.PathLike, tokenizer: SAT) -> dict:
    """Write the tokenizer and the index of the cache at ``out`` once every shard is finished
    (``aar tokenize-dataset --merge``, or rank 0 at the end of a run). The index depends only on
    the shards, so it is the same whatever the number of processes that wrote them."""
    out = Path(out)
    plan_path = out / PLAN_NAME
    if (out / CACHE_META).exists():
        raise CheckpointError(f"{out}: already holds a complete token cache")
    if not plan_path.is_file():
        raise CheckpointError(f"{out}: no {PLAN_NAME}: not a cache started by `aar tokenize-dataset`")
    plan = json.loads(plan_path.read_text())
    if plan.get("tokenizer") != tokenizer_fingerprint(tokenizer):
        raise CheckpointError(f"{out}: was started with another tokenizer than the one given")
    records = [read_shard_record(out, k) for k in range(plan["units"])]
    missing = [shard_name(k) for k, r in enumerate(records) if r is None]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise CheckpointError(
            f"{out}: {len(missing)} of {plan['units']} shard(s) not finished ({shown}); "
            "rerun the tokenize-dataset command to finish them"
        )
    if (out / TOKENIZER_SUBDIR).is_dir():
        remove_stale_temporaries(out / TOKENIZER_SUBDIR, "")
    remove_stale_temporaries(out, f"{CACHE_META}.")
    undecodable = {name: reason for r in records for name, reason in r["undecodable"].items()}
    num_windows = sum(r["windows"] for r in records)
    if num_windows == 0:
        raise ValueError("no decodable audio in the data: nothing to cache")
    tokenizer.save_pretrained(out / TOKENIZER_SUBDIR)
    describe = {k: plan[k] for k in ("scales", "seq_len", "codebook_size", "condition", "cond_dim", "class_names")}
    shards = [{"name": r["name"], "windows": r["windows"], "clips": r["clips"]} for r in records]
    info = {k: plan[k] for k in ("views", "max_windows", "source", "clap")}
    meta = write_index(out, {
        **describe,
        "num_windows": num_windows,
        "num_clips": sum(r["clips"] for r in records),
        "shards": shards,
        **info,
        "undecodable": list(undecodable.values()),
    })
    log.info("wrote %s: %d windows in %d shard(s), %d undecodable clip(s) skipped",
             out, num_windows, len(shards), len(undecodable))
    return meta
