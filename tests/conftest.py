"""Shared test helpers: where the authors' fixtures live, tiny models, generated audio."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))

_DEFAULT_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
FIXTURES = Path(os.environ.get("AAR_FIXTURES", _DEFAULT_FIXTURES))
OFFICIAL = FIXTURES / "official"


def official(*parts: str) -> Path:
    """Path inside the authors' fixtures; skips the test (with the reason) when they are absent."""
    path = OFFICIAL.joinpath(*parts)
    if not path.exists():
        pytest.skip(
            f"official fixtures not found at {path} (they live in ../shared/fixtures beside the project; "
            "set AAR_FIXTURES to point elsewhere)"
        )
    return path


def sine_mix(batch: int = 2, seconds: float = 1.0, sr: int = 24_000, seed: int = 0) -> torch.Tensor:
    """A few random sinusoids plus a little noise, ``Tensor[B x 1 x T]``."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    out = np.zeros((batch, 1, t.size), dtype=np.float32)
    for b in range(batch):
        for _ in range(3):
            f = rng.uniform(80, 4000)
            out[b, 0] += 0.2 * np.sin(2 * np.pi * f * t + rng.uniform(0, 6.28))
        out[b, 0] += 0.01 * rng.standard_normal(t.size)
    return torch.from_numpy(out)


@pytest.fixture
def tiny_sat():
    from aar import SAT, SATConfig

    torch.manual_seed(0)
    return SAT(SATConfig.preset("tiny")).eval()
