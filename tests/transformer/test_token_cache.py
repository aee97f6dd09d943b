"""The token cache: what tokenize-dataset writes and how training reads it."""

import json

import numpy as np
import pytest
import torch

from aar import SAT
from aar.audio import save_audio
from aar.checkpoint import CheckpointError
from aar.data import open_source
from aar.transformer.token_cache import TokenCache, TokenCacheLoader, build_token_cache, clip_windows, split_cache
from tests.conftest import sine_mix


def test_cache_holds_the_tokenizer_codes(label_cache, labelled_audio, sat_dir):
    cache = TokenCache(label_cache)
    assert len(cache) == 4 and cache.condition == "label"
    assert cache.class_names == ["cls0", "cls1", "cls2", "cls3"]
    assert [s["windows"] for s in cache.meta["shards"]] == [3, 1]
    assert cache.codes[0].dtype == np.int16 and isinstance(cache.codes[0], np.memmap)
    sat = SAT.from_pretrained(sat_dir)
    from aar.audio import load_audio

    for i in range(4):
        item = cache[i]
        assert cache.names[i] == f"cls{i}/clip{i}.wav#0"
        wav = load_audio(labelled_audio / f"cls{i}" / f"clip{i}.wav")[None]
        assert torch.equal(item["codes"], torch.cat(sat.encode(wav), 1)[0])
        assert int(item["cond"]) == i
    batch = cache.batch([3, 0, 2])  # across both shards, any order
    assert batch["codes"].shape == (3, 455) and batch["codes"].dtype == torch.long
    assert batch["cond"].tolist() == [3, 0, 2]
    assert torch.equal(batch["codes"][0], cache[3]["codes"])
    assert torch.equal(cache.tokenizer().quantizer.codebooks[0].embed, sat.quantizer.codebooks[0].embed)


def test_windows_of_a_clip():
    wav = torch.arange(60_000, dtype=torch.float32)[None]
    w = clip_windows(wav, 24_000, None)
    assert w.shape == (2, 1, 24_000) and w[1, 0, 0] == 24_000
    assert clip_windows(wav, 24_000, 1).shape == (1, 1, 24_000)
    short = clip_windows(wav[:, :1000], 24_000, None)
    assert short.shape == (1, 1, 24_000) and short[0, 0, 1000:].abs().sum() == 0


def test_unconditional_cache_and_errors(tmp_path, sat_dir):
    save_audio(tmp_path / "data" / "x.wav", sine_mix(1, seconds=2.5)[0])
    sat = SAT.from_pretrained(sat_dir)
    meta = build_token_cache(sat, open_source(tmp_path / "data"), tmp_path / "c", condition="none")
    assert meta["num_windows"] == 2 and meta["num_clips"] == 1
    cache = TokenCache(tmp_path / "c")
    assert cache[1]["cond"] is None and cache.names == ["x.wav#0", "x.wav#1"]
    with pytest.raises(CheckpointError, match="already holds a complete token cache"):
        build_token_cache(sat, open_source(tmp_path / "data"), tmp_path / "c")
    with pytest.raises(ValueError, match="class sub-folders"):
        build_token_cache(sat, open_source(tmp_path / "data"), tmp_path / "d", condition="label")
    with pytest.raises(CheckpointError, match="not a token cache"):
        TokenCache(tmp_path / "data")


def test_split_holds_out_whole_clips(label_cache):
    cache = TokenCache(label_cache)
    train, val = split_cache(cache, 0.25, 10, seed=0)
    assert len(val) == 1 and sorted(np.concatenate([train, val]).tolist()) == [0, 1, 2, 3]
    assert split_cache(cache, 0.0, 10, seed=0)[1].size == 0


def test_loader_is_seeded_sharded_and_resumable(label_cache):
    cache = TokenCache(label_cache)
    idx = np.arange(4)
    a = TokenCacheLoader(cache, idx, batch_size=2, seed=1)
    stream = iter(a)
    first = [next(stream)["cond"].tolist() for _ in range(3)]
    state = a.state_dict()
    rest = [next(stream)["cond"].tolist() for _ in range(3)]
    b = TokenCacheLoader(cache, idx, batch_size=2, seed=1)
    b.load_state_dict(json.loads(json.dumps(state)))
    assert [x["cond"].tolist() for _, x in zip(range(3), iter(b))] == rest
    assert sorted(first[0] + first[1]) == [0, 1, 2, 3]  # one epoch covers every window once
    ranks = [next(iter(TokenCacheLoader(cache, idx, 2, seed=1, rank=r, world_size=2)))["cond"].tolist() for r in (0, 1)]
    assert sorted(ranks[0] + ranks[1]) == [0, 1, 2, 3]
