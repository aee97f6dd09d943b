"""Tiny tokenizer-training setups for the engine tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import soundfile as sf

from aar.train import TokenizerTrainConfig


def write_sine_folder(root: Path, n: int = 6, seconds: float = 1.3, sr: int = 24_000, seed: int = 0) -> Path:
    """``n`` clips of a few sinusoids (a learnable signal) plus a little noise."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    for i in range(n):
        wav = sum(0.2 * np.sin(2 * np.pi * rng.uniform(100, 2000) * t + rng.uniform(0, 6)) for _ in range(3))
        wav = wav + 0.005 * rng.standard_normal(t.size)
        sf.write(root / f"clip{i}.wav", wav.astype(np.float32), sr)
    return root


def small_config(**train) -> TokenizerTrainConfig:
    """The tiny preset made cheaper for tests (small codebooks, slim discriminator, batch 2)."""
    cfg = TokenizerTrainConfig.from_dict(
        {
            "model": {"preset": "tiny", "codebook_size": 64, "kmeans_iters": 5},
            "model_init": "unit_gain",
            "discriminator": {"filters": 4},
            "data": {"batch_size": 2, "num_workers": 0, "val_fraction": 0.2, "val_clips": 2},
            "optim": {"name": "adam", "lr": 1e-3, "betas": [0.5, 0.9], "warmup_steps": 2},
            "train": {"max_steps": 4, "log_every": 1, "val_every": 0, "checkpoint_every": 0, **train},
        }
    )
    return cfg


@pytest.fixture(autouse=True)
def one_thread():
    """Training steps are many small ops: on a shared 2-core machine one intra-op thread is several
    times faster than two (no spinning on a descheduled sibling)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
