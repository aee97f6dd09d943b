"""WebDataset shards: every sample read once per epoch, held-out keys, workers, resume, bad shards."""

from __future__ import annotations

import itertools

import pytest
import torch

from aar.data import DataConfig, DataError, prepare_training_data
from aar.data.split import key_hash
from tests.data.conftest import write_shards

SR = 24_000


def take(loader, n):
    return [b.clone() for b in itertools.islice(iter(loader), n)]


def levels_of(batches):
    return sorted(round(float(x.mean()), 4) for b in batches for x in b)


def prepare(spec, **kw):
    cfg = DataConfig(**{"batch_size": 3, "num_workers": 0, "val_fraction": 0.2, "val_clips": 4, "shuffle_buffer": 4, **kw})
    return prepare_training_data(spec, cfg, length=SR, sample_rate=SR, seed=11)


@pytest.mark.parametrize("n_shards,workers", [(3, 2), (1, 2)])
def test_each_training_sample_once_per_epoch(tmp_path, n_shards, workers):
    per_shard = 12 // n_shards
    levels = write_shards(tmp_path, n_shards, per_shard)
    data = prepare(str(tmp_path / f"shard-{{000..{n_shards - 1:03d}}}.tar"), num_workers=workers)
    val_keys = {k for k in levels if key_hash(k, 11) < 0.2}
    assert set(data.validation.names) == val_keys and 0 < len(val_keys) < 12
    assert data.validation.wav.shape == (len(val_keys), 1, SR)
    train = sorted(round(v, 4) for k, v in levels.items() if k not in val_keys)
    n_train = len(train)
    # 16 kHz flac/wav, resampled to 24 kHz, 1.2 s clips cropped to 1 s: levels identify the samples
    batches = take(data.loader, 2 * n_train // 3 + 4)
    assert all(b.shape == (3, 1, SR) for b in batches)
    seen = levels_of(batches)
    assert set(seen) == set(train)
    counts = {v: seen.count(v) for v in train}
    assert min(counts.values()) >= 2  # two epochs went by, nothing held out leaked in
    assert not data.failures.reasons


def test_shard_stream_resumes_exactly(tmp_path):
    write_shards(tmp_path, 4, 5)
    spec = str(tmp_path / "shard-{000..003}.tar")
    reference = take(prepare(spec, num_workers=2).loader, 9)
    first = prepare(spec, num_workers=2)
    take(first.loader, 5)
    resumed = prepare(spec, num_workers=2)
    resumed.loader.load_state_dict(first.loader.state_dict())
    for x, y in zip(take(resumed.loader, 4), reference[5:]):
        assert torch.equal(x, y)


def test_bad_samples_and_shards_are_reported_and_skipped(tmp_path):
    from webdataset import TarWriter

    write_shards(tmp_path, 2, 4)
    with TarWriter(str(tmp_path / "shard-002.tar")) as tar:
        tar.write({"__key__": "broken", "flac": b"fLaC garbage"})
        tar.write({"__key__": "noaudio", "txt": b"hello"})
    (tmp_path / "shard-003.tar").write_bytes(b"this is not a tar archive" * 50)
    data = prepare(str(tmp_path / "shard-{000..003}.tar"), val_fraction=0.0)
    batches = take(data.loader, 6)
    assert all(b.shape == (3, 1, SR) for b in batches)
    reasons = data.failures.reasons
    assert any(name.endswith(":broken") for name in reasons)
    assert any(name.endswith(":noaudio") and "no audio field" in r for name, r in reasons.items())
    assert any(name.endswith("shard-003.tar") and "cannot read WebDataset shard" in r for name, r in reasons.items())


def test_empty_shard_is_an_error_before_training(tmp_path):
    from webdataset import TarWriter

    with TarWriter(str(tmp_path / "empty.tar")):
        pass
    with pytest.raises(DataError, match="empty.tar: WebDataset shard holds no samples"):
        prepare(str(tmp_path / "empty.tar"))
