"""The token cache's data-layer half on a synthetic cache (no tokenizer): the streaming loader
of train-aar and the bounded-memory validation split."""

import json

import numpy as np
import pytest

from aar.checkpoint import CheckpointError
from aar.data.token_cache import (
    PLAN_NAME,
    StreamingTokenLoader,
    TokenCache,
    held_out_windows,
    write_index,
    write_shard,
)
from aar.data.split import key_hash

SEQ_LEN = 5


def synthetic_cache(out, clips_per_shard, windows_per_clip=2, condition="label"):
    """Shards of ``clips_per_shard[k]`` clips (or the list of each clip's window count); every
    code row holds its window's global index."""
    out.mkdir(parents=True, exist_ok=True)
    shards, start = [], 0
    for k, clips in enumerate(clips_per_shard):
        counts = clips if isinstance(clips, list) else [windows_per_clip] * clips
        names = [f"s{k}c{c}.wav#{w}" for c, count in enumerate(counts) for w in range(count)]
        n = len(names)
        codes = np.repeat(np.arange(start, start + n, dtype=np.int16)[:, None], SEQ_LEN, axis=1)
        cond = np.arange(start, start + n, dtype=np.int64) if condition == "label" else None
        record = write_shard(out, k, codes, cond, names, {"clips": len(counts), "undecodable": {}})
        shards.append({"name": record["name"], "windows": n, "clips": len(counts)})
        start += n
    write_index(out, {"scales": [SEQ_LEN], "seq_len": SEQ_LEN, "codebook_size": 4096, "condition": condition,
                      "cond_dim": None, "class_names": [], "num_windows": start, "shards": shards})
    return TokenCache(out)


def epoch_windows(loader, batches):
    stream = iter(loader)
    return [next(stream)["codes"][:, 0].tolist() for _ in range(batches)]


@pytest.fixture
def cache(tmp_path):
    return synthetic_cache(tmp_path / "c", [3, 0, 5, 2, 4, 1, 3])  # an empty shard, as all-bad clips give


@pytest.mark.parametrize("block_shards", [1, 2])  # 1: blocks smaller than a batch (a shard of 2 windows)
def test_an_epoch_on_several_ranks_covers_the_training_windows_once(cache, block_shards):
    exclude = np.array([0, 1, 17])
    assert len(cache) == 36 and len(cache.shards) == 6
    loaders = [StreamingTokenLoader(cache, 4, seed=3, rank=r, world_size=3, exclude=exclude, block_shards=block_shards)
               for r in range(3)]
    assert {ld.batches_per_epoch() for ld in loaders} == {(33 // 3) // 4}
    seen = [w for ld in loaders for batch in epoch_windows(ld, ld.batches_per_epoch()) for w in batch]
    assert len(seen) == len(set(seen)) == 3 * 2 * 4
    assert not set(seen) & set(exclude.tolist())
    # with batch 1 every rank hands out its whole share: all but total % world windows
    singles = [StreamingTokenLoader(cache, 1, seed=3, rank=r, world_size=3, exclude=exclude, block_shards=block_shards)
               for r in range(3)]
    every = [w for ld in singles for b in epoch_windows(ld, ld.batches_per_epoch()) for w in b]
    assert sorted(every) == sorted(set(range(36)) - {0, 1, 17})
    batch = next(iter(loaders[0]))
    assert batch["codes"].dtype.is_floating_point is False and batch["codes"].shape == (4, SEQ_LEN)
    assert batch["cond"].tolist() == batch["codes"][:, 0].tolist()  # conditions stay with their codes


def test_epochs_differ_and_the_order_is_seeded(cache):
    a = StreamingTokenLoader(cache, 3, seed=1, block_shards=2)
    n = a.batches_per_epoch()
    first = epoch_windows(a, 2 * n)
    assert first[:n] != first[n:]
    assert sorted(w for b in first[:n] for w in b) == sorted(w for b in first[n:] for w in b)
    assert epoch_windows(StreamingTokenLoader(cache, 3, seed=1, block_shards=2), n) == first[:n]
    assert epoch_windows(StreamingTokenLoader(cache, 3, seed=2, block_shards=2), n) != first[:n]


@pytest.mark.parametrize("stop", [1, 3, 5, 11])  # inside a block, across blocks, at and past an epoch's end
def test_resume_gives_the_batches_an_uninterrupted_loader_gives(cache, stop):
    whole = StreamingTokenLoader(cache, 3, seed=5, rank=1, world_size=2, block_shards=3)
    expected = epoch_windows(whole, stop + 6)
    first = StreamingTokenLoader(cache, 3, seed=5, rank=1, world_size=2, block_shards=3)
    stream = iter(first)
    for _ in range(stop):
        next(stream)
    resumed = StreamingTokenLoader(cache, 3, seed=5, rank=1, world_size=2, block_shards=3)
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
    assert epoch_windows(resumed, 6) == expected[stop:]


def test_memory_holds_one_block_of_shards(cache, monkeypatch):
    loader = StreamingTokenLoader(cache, 2, seed=0, block_shards=2)
    spans = []
    real_read = loader._read

    def read(rows):
        shards = np.unique(np.searchsorted(cache.offsets, rows, side="right") - 1)
        spans.append(len(shards))
        return real_read(rows)

    monkeypatch.setattr(loader, "_read", read)
    epoch_windows(loader, 2 * loader.batches_per_epoch())
    assert spans and max(spans) <= 2 and len(spans) == 2 * 3  # 6 non-empty shards, 3 blocks an epoch


def test_a_share_smaller_than_a_batch_is_repeated(tmp_path):
    small = synthetic_cache(tmp_path / "s", [1], windows_per_clip=3)
    batches = [epoch_windows(StreamingTokenLoader(small, 4, rank=r, world_size=2), 2) for r in range(2)]
    for rank in batches:
        assert all(len(b) == 4 and len(set(b)) == 1 for b in rank)  # one window each (3 // 2), repeated
    with pytest.raises(ValueError, match="no training windows"):
        StreamingTokenLoader(small, 2, exclude=np.arange(3))


def reference_split(names, fraction, max_windows, seed):
    """The split as first written: every clip in memory, sorted by hash."""
    n = len(names)
    target = 0 if fraction <= 0 or n < 2 else min(max_windows, max(1, round(fraction * n)), n - 1)
    clips = {}
    for i, name in enumerate(names):
        clips.setdefault(name.rsplit("#", 1)[0], []).append(i)
    val = []
    for clip in sorted(clips, key=lambda c: key_hash(c, seed)):
        if len(val) >= target:
            break
        if len(val) + len(clips[clip]) < n:
            val += clips[clip]
    return sorted(val)


@pytest.mark.parametrize("fraction,max_windows", [(0.1, 100), (0.5, 100), (0.9, 100), (0.3, 2), (0.0, 10)])
def test_streamed_split_matches_the_in_memory_one(tmp_path, fraction, max_windows):
    cache = synthetic_cache(tmp_path / "c", [2, 3, 1, 4], windows_per_clip=2)
    for seed in range(4):
        got = held_out_windows(cache, fraction, max_windows, seed).tolist()
        assert got == reference_split(cache.names, fraction, max_windows, seed)


def test_split_passes_over_a_clip_that_would_hold_out_everything(tmp_path):
    cache = synthetic_cache(tmp_path / "c", [[6, 1], [1, 1, 1]])
    for seed in range(8):
        for fraction in (0.5, 0.9):
            expected = reference_split(cache.names, fraction, 100, seed)
            assert held_out_windows(cache, fraction, 100, seed).tolist() == expected
            assert 0 < len(expected) < len(cache)


def test_incomplete_or_damaged_caches_are_refused(tmp_path):
    cache = synthetic_cache(tmp_path / "c", [2, 2])
    (tmp_path / "c" / "shard-00001.codes.npy").unlink()
    with pytest.raises(CheckpointError, match="shard-00001.codes.npy: unreadable shard"):
        TokenCache(tmp_path / "c")
    np.save(tmp_path / "c" / "shard-00001.codes.npy", np.zeros((3, SEQ_LEN), np.int16))
    with pytest.raises(CheckpointError, match=r"shape \(3, 5\), the index says \(4, 5\)"):
        TokenCache(tmp_path / "c")
    (tmp_path / "c" / "cache.json").unlink()
    (tmp_path / "c" / PLAN_NAME).write_text("{}")
    with pytest.raises(CheckpointError, match="incomplete token cache .2 shard.s. finished.*rerun the same"):
        TokenCache(tmp_path / "c")
    assert len(cache) == 8
