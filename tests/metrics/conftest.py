"""Weight files in the published layouts, built from seeded random weights (no real weights exist here).

When the reference packages are installed (the ``test`` extra), the files are the state dicts of
the reference classes themselves (torchvggish's ``VGG``; the PANNs ``Cnn14`` with its torchlibrosa
front end), so the layouts are the published ones by construction; without them, our own classes
are saved in the same layout. ``tests/metrics/test_reference_parity.py`` runs the references.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aar.audio import save_audio
from aar.metrics.backbones import Cnn14, VGGish
from tests.metrics import references
from tests.metrics.references import sensitive_random_init

__all__ = ["sensitive_random_init", "tone", "write_clips"]


def _reference(build, seed: int) -> torch.nn.Module | None:
    try:
        return build(seed)
    except pytest.skip.Exception:
        return None


@pytest.fixture(scope="session")
def vggish_checkpoint(tmp_path_factory):
    """``vggish-10086976.pth`` layout: a bare state dict. Returns ``(path, our VGGish with that state)``."""
    reference = _reference(references.torchvggish_vgg, seed=1)
    model = VGGish().eval()
    if reference is None:
        sensitive_random_init(model, seed=1)
        state = model.state_dict()
    else:
        state = reference.state_dict()
        model.load_state_dict(state)
    path = tmp_path_factory.mktemp("weights") / "vggish-10086976.pth"
    torch.save(state, path)
    return path, model


def _cnn14_state_by_hand() -> dict:
    """Our CNN14 with the front-end tensors the PANNs checkpoint stores, built from their definition."""
    model = Cnn14().eval()
    sensitive_random_init(model, seed=2)
    model.bn0.running_mean.fill_(-40.0)  # log-mel input is in dB
    model.bn0.running_var.fill_(400.0)
    window = torch.hann_window(1024, dtype=torch.float64)
    angles = 2 * math.pi * torch.outer(torch.arange(513, dtype=torch.float64), torch.arange(1024, dtype=torch.float64)) / 1024
    state = dict(model.state_dict())
    state["spectrogram_extractor.stft.conv_real.weight"] = (torch.cos(angles) * window).float().unsqueeze(1)
    state["spectrogram_extractor.stft.conv_imag.weight"] = (-torch.sin(angles) * window).float().unsqueeze(1)
    state["logmel_extractor.melW"] = model.mel_filters.t().clone()
    return state


@pytest.fixture(scope="session")
def cnn14_checkpoint(tmp_path_factory):
    """``Cnn14_mAP=0.431.pth`` layout: ``{"iteration", "model", "sampler"}`` with the front end as tensors.

    Returns ``(path, our Cnn14 loaded from it)``.
    """
    reference = _reference(references.panns_cnn14, seed=2)
    state = _cnn14_state_by_hand() if reference is None else dict(reference.state_dict())
    # The published files also pickle the training sampler's numpy state.
    checkpoint = {"iteration": 660000, "model": state, "sampler": {"queue": np.arange(8), "state": np.random.RandomState(0).get_state()}}
    path = tmp_path_factory.mktemp("weights") / "Cnn14_mAP=0.431.pth"
    torch.save(checkpoint, path)
    return path, Cnn14.from_weights(path)


def tone(seconds: float, sample_rate: int, freq: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def write_clips(folder, names, seconds=1.0, sample_rate=24_000, seed=0, noise=0.0):
    """One tone per name (frequency from the name's position), optionally with extra noise."""
    rng = np.random.default_rng(seed + 1000)
    for i, name in enumerate(names):
        wav = tone(seconds, sample_rate, 220.0 * (i + 1), seed=i)
        wav = wav + noise * rng.standard_normal(wav.size).astype(np.float32)
        save_audio(folder / f"{name}.wav", wav, sample_rate)
    return folder
