"""Weight files in the published layouts, built from random weights (no real weights exist here)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aar.audio import save_audio
from aar.metrics.backbones import Cnn14, VGGish


def sensitive_random_init(module: torch.nn.Module, seed: int) -> None:
    """Variance-preserving random weights and non-trivial BatchNorm statistics.

    PyTorch's default initialisation shrinks activations layer by layer, so a deep random network
    gives nearly the same output for every input; this one keeps embeddings input-dependent, and
    makes loading the BatchNorm statistics matter.
    """
    generator = torch.Generator().manual_seed(seed)
    for layer in module.modules():
        if isinstance(layer, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.kaiming_normal_(layer.weight, nonlinearity="relu", generator=generator)
            if layer.bias is not None:
                torch.nn.init.normal_(layer.bias, std=0.01, generator=generator)
        elif isinstance(layer, torch.nn.BatchNorm2d):
            layer.running_mean.normal_(0.0, 0.1, generator=generator)
            layer.running_var.uniform_(0.5, 1.5, generator=generator)
            layer.weight.data.uniform_(0.8, 1.2, generator=generator)
            layer.bias.data.normal_(0.0, 0.1, generator=generator)


@pytest.fixture(scope="session")
def vggish_checkpoint(tmp_path_factory):
    """``vggish-10086976.pth`` layout: a bare state dict. Returns ``(path, model it came from)``."""
    model = VGGish().eval()
    sensitive_random_init(model, seed=1)
    path = tmp_path_factory.mktemp("weights") / "vggish-10086976.pth"
    torch.save(model.state_dict(), path)
    return path, model


@pytest.fixture(scope="session")
def cnn14_checkpoint(tmp_path_factory):
    """``Cnn14_mAP=0.431.pth`` layout: ``{"iteration", "model", "sampler"}`` with the front end as tensors."""
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
    # The published files also pickle the training sampler's numpy state.
    checkpoint = {"iteration": 660000, "model": state, "sampler": {"queue": np.arange(8), "state": np.random.RandomState(0).get_state()}}
    path = tmp_path_factory.mktemp("weights") / "Cnn14_mAP=0.431.pth"
    torch.save(checkpoint, path)
    return path, model


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
