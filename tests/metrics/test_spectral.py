import numpy as np
import pytest
import torch

from aar.metrics import MelDistance, STFTDistance, mel_distance, stft_distance
from tests.conftest import sine_mix


def numpy_magnitude(x: np.ndarray, window: int) -> np.ndarray:
    """|STFT| with centred, reflection-padded frames and a periodic Hann window: [bins x frames]."""
    hop = window // 4
    padded = np.pad(x, window // 2, mode="reflect")
    frames = 1 + (padded.size - window) // hop
    idx = np.arange(window)[None, :] + hop * np.arange(frames)[:, None]
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(window) / window)
    return np.abs(np.fft.rfft(padded[idx] * hann, axis=1)).T


def test_stft_distance_matches_the_documented_formula():
    x, y = sine_mix(2, 0.5, seed=1)[:, 0], sine_mix(2, 0.5, seed=2)[:, 0]
    got = stft_distance(x, y)
    for b in range(2):
        expected = 0.0
        for window in (2048, 512):
            mx, my = numpy_magnitude(x[b].double().numpy(), window), numpy_magnitude(y[b].double().numpy(), window)
            lx, ly = np.log10(np.maximum(mx, 1e-5) ** 2), np.log10(np.maximum(my, 1e-5) ** 2)
            expected += np.abs(lx - ly).mean() + np.abs(mx - my).mean()
        assert got[b].item() == pytest.approx(expected, rel=1e-4)


def test_mel_distance_matches_the_documented_formula():
    librosa = pytest.importorskip("librosa")
    x, y = sine_mix(1, 0.5, seed=3)[0, 0], sine_mix(1, 0.5, seed=4)[0, 0]
    expected = 0.0
    for window, bands in zip((32, 64, 128, 256, 512, 1024, 2048), (5, 10, 20, 40, 80, 160, 320)):
        fb = librosa.filters.mel(sr=24_000, n_fft=window, n_mels=bands)
        mx = fb @ numpy_magnitude(x.double().numpy(), window)
        my = fb @ numpy_magnitude(y.double().numpy(), window)
        expected += np.abs(np.log10(np.maximum(mx, 1e-5)) - np.log10(np.maximum(my, 1e-5))).mean()
    assert mel_distance(x.unsqueeze(0), y.unsqueeze(0)).item() == pytest.approx(expected, rel=1e-4)


def test_identical_clips_are_at_distance_zero_and_noise_increases_it():
    clean = sine_mix(1, 0.5, seed=5)
    assert mel_distance(clean, clean).item() == 0.0
    assert stft_distance(clean, clean).item() == 0.0
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(clean.shape, generator=generator)
    mels = [mel_distance(clean + level * noise, clean).item() for level in (0.001, 0.01, 0.1)]
    stfts = [stft_distance(clean + level * noise, clean).item() for level in (0.001, 0.01, 0.1)]
    assert mels == sorted(mels) and stfts == sorted(stfts)


def test_batch_gives_one_distance_per_pair():
    a, b = sine_mix(3, 0.25, seed=6), sine_mix(3, 0.25, seed=7)
    batched = MelDistance()(a, b)
    single = torch.stack([MelDistance()(a[i : i + 1], b[i : i + 1])[0] for i in range(3)])
    assert batched.shape == (3,)
    torch.testing.assert_close(batched, single)


def test_bad_pairs_are_rejected():
    with pytest.raises(ValueError, match="same shape"):
        STFTDistance()(torch.zeros(1, 4000), torch.zeros(1, 5000))
    with pytest.raises(ValueError, match="at least 1025"):
        MelDistance()(torch.zeros(1, 1000), torch.zeros(1, 1000))
