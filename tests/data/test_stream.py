"""Training batches from a folder: crops, determinism, worker independence, exact resume,
fixed validation clips and undecodable files."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import soundfile as sf
import torch

from aar.data import DataConfig, DataError, prepare_training_data, random_crop
from tests.data.conftest import tone

SR = 24_000


def take(loader, n):
    return [b.clone() for b in itertools.islice(iter(loader), n)]


def levels_of(batch):
    return sorted(round(float(x.mean()), 2) for x in batch)


def prepare(root, **kw):
    cfg = DataConfig(**{"batch_size": 2, "num_workers": 0, "val_fraction": 0.2, "val_clips": 1, **kw})
    return prepare_training_data(root, cfg, length=SR, sample_rate=SR, seed=5)


def test_random_crop_pads_short_clips():
    rng = np.random.default_rng(0)
    short = torch.ones(1, 100)
    out = random_crop(short, 160, rng)
    assert out.shape == (1, 160) and out[0, :100].eq(1).all() and out[0, 100:].eq(0).all()
    long = torch.arange(1000.0)[None]
    crop = random_crop(long, 10, rng)
    assert crop.shape == (1, 10) and torch.equal(crop, torch.arange(crop[0, 0].item(), crop[0, 0].item() + 10)[None])


def test_batches_are_crops_of_training_files_only(audio_folder):
    root, levels = audio_folder
    data = prepare(root)
    assert len(data.validation) == 1 and data.validation.wav.shape == (1, 1, SR)
    val_level = levels[data.validation.names[0]]
    assert float(data.validation.wav.mean()) == pytest.approx(val_level, abs=0.01)
    train_levels = {round(v, 2) for k, v in levels.items() if k != data.validation.names[0]}
    seen = set()
    for batch in take(data.loader, 6):
        assert batch.shape == (2, 1, SR)
        seen.update(levels_of(batch))
    assert seen == train_levels  # every training file, and never the held-out one


def test_stream_is_deterministic_and_independent_of_workers(audio_folder):
    root, _ = audio_folder
    a = take(prepare(root).loader, 5)
    b = take(prepare(root).loader, 5)
    c = take(prepare(root, num_workers=2).loader, 5)
    for x, y, z in zip(a, b, c):
        assert torch.equal(x, y) and torch.equal(x, z)
    assert not torch.equal(a[0], a[3])  # later epochs are reshuffled / re-cropped


def test_resume_continues_the_stream_exactly(audio_folder):
    root, _ = audio_folder
    reference = take(prepare(root).loader, 7)
    first = prepare(root, num_workers=2)
    take(first.loader, 4)
    state = first.loader.state_dict()
    assert state["position"]["batches"] == 4
    resumed = prepare(root, num_workers=1)
    resumed.loader.load_state_dict(state)
    for x, y in zip(take(resumed.loader, 3), reference[4:]):
        assert torch.equal(x, y)


def test_ranks_read_disjoint_items(audio_folder):
    root, _ = audio_folder
    cfg = DataConfig(batch_size=1, num_workers=0, val_fraction=0.0)
    ranks = [prepare_training_data(root, cfg, SR, SR, seed=1, rank=r, world_size=2) for r in range(2)]
    per_rank = [levels_of(torch.cat(take(d.loader, 3))) for d in ranks]  # one epoch: 3 files per rank
    assert not set(per_rank[0]) & set(per_rank[1])
    assert len(set(per_rank[0]) | set(per_rank[1])) == 6


def test_undecodable_files_are_replaced_counted_and_kept(tmp_path, caplog):
    root = tmp_path / "mixed"
    root.mkdir()
    for i in range(3):
        sf.write(root / f"ok{i}.wav", tone(1.2, SR, 0.1 * (i + 1), i), SR)
    (root / "corrupt.flac").write_bytes(b"fLaC" + bytes(range(256)) * 4)
    (root / "zero.wav").write_bytes(b"")
    with caplog.at_level("WARNING", logger="aar.data"):
        data = prepare(root, val_fraction=0.0, batch_size=5)
        batches = take(data.loader, 4)
    assert all(b.shape == (5, 1, SR) for b in batches)
    assert set(levels_of(torch.cat(batches))) <= {0.1, 0.2, 0.3}
    assert sorted(data.failures.reasons) == ["corrupt.flac", "zero.wav"]
    assert "empty file" in data.failures.reasons["zero.wav"]
    warnings = [r.message for r in caplog.records if "undecodable" in r.message]
    assert len(warnings) == 2  # each logged once although read again every epoch
    assert "2 undecodable file(s)" in data.failures.summary()


def test_all_files_undecodable_is_a_clear_error(tmp_path):
    root = tmp_path / "bad"
    root.mkdir()
    (root / "a.wav").write_bytes(b"RIFF....WAVE")
    (root / "b.wav").write_bytes(b"")
    data = prepare(root, val_fraction=0.0)
    with pytest.raises(DataError, match="files in a row failed to decode"):
        take(data.loader, 1)
