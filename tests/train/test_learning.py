"""The tiny tokenizer learns: on generated audio, loss and validation distances fall within a few steps."""

from __future__ import annotations

from aar.train import train_tokenizer
from tests.train.conftest import small_config, write_sine_folder


def test_loss_and_validation_distances_fall(tmp_path):
    data = write_sine_folder(tmp_path / "data", n=8, seed=3)
    cfg = small_config(max_steps=16, val_every=16)
    summary = train_tokenizer(cfg, data, tmp_path / "run").summary
    loss = summary["train_loss"]
    assert loss["last"] < 0.8 * loss["first"], loss
    first, last = summary["validation"][0], summary["validation"][-1]
    assert (first["step"], last["step"]) == (0, 16)
    assert last["mel_distance"] < 0.7 * first["mel_distance"], summary["validation"]
    assert last["stft_distance"] < first["stft_distance"], summary["validation"]
