"""Sizes of the documented differences between aar's metrics and the reference tool-chains.

Run: ``.venv/bin/python -m tests.metrics.reference_differences`` (about a minute on 2 cores). It
prints the numbers quoted in docs/evaluation.md ("Agreement with the reference implementations").

Input: 24 synthetic 24 kHz clips of 1-4 s (chords, a chirp, noise bursts: broadband, varied), and
the same clips with white noise at 20 dB SNR as the "generated" set. Networks carry the seeded
random weights of the parity tests, so these are sizes on such weights, not on pretrained ones.
"""

from __future__ import annotations

import numpy as np
import torch

from aar.audio import resample
from aar.metrics import EmbeddingStats, kl_divergence
from aar.metrics.backbones import VGGish
from tests.metrics import references


def synthetic_clip(index: int, sample_rate: int = 24_000) -> np.ndarray:
    rng = np.random.default_rng(index)
    seconds = 1.0 + 3.0 * rng.random()
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    base = 110.0 * 2 ** (rng.integers(0, 24) / 12)
    chord = sum(0.15 * np.sin(2 * np.pi * base * k * t + rng.random() * 6.28) for k in (1, 1.5, 2, 3))
    chirp = 0.1 * np.sin(2 * np.pi * (200 + 2000 * t / seconds) * t)
    bursts = 0.1 * rng.standard_normal(t.size) * (np.sin(2 * np.pi * rng.uniform(0.5, 4) * t) > 0.6)
    return (chord + chirp + bursts).astype(np.float32)


def noisy(wav: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(wav.size).astype(np.float32)
    return wav + noise * np.sqrt(np.mean(wav**2) / 10 ** (snr_db / 10) / np.mean(noise**2))


def relative(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def main() -> None:
    torch.set_num_threads(2)
    import resampy

    clips = [synthetic_clip(i) for i in range(24)]
    sets = {"ref": clips, "gen": [noisy(w, 20.0, 100 + i) for i, w in enumerate(clips)]}

    reference = references.torchvggish_vgg(seed=11)
    ours = VGGish().eval()
    ours.load_state_dict(reference.state_dict())
    with_relu = VGGish().eval()
    with_relu.embeddings.append(torch.nn.ReLU())
    with_relu.load_state_dict(reference.state_dict())

    def fad(model, resampler) -> float:
        stats = []
        for role in ("ref", "gen"):
            with torch.inference_mode():
                rows = [model(torch.from_numpy(resampler(w))[None]).embeddings[0].numpy() for w in sets[role]]
            stats.append(EmbeddingStats.from_embeddings(np.concatenate(rows)))
        return stats[0].distance(stats[1])

    def soxr_16k(w):
        return resample(w, 24_000, 16_000)

    def resampy_16k(w):
        return resampy.resample(w.astype(np.float64), 24_000, 16_000).astype(np.float32)

    fad_soxr, fad_resampy = fad(ours, soxr_16k), fad(ours, resampy_16k)
    print(f"VGGish FAD, soxr vs resampy (24 -> 16 kHz): {fad_soxr:.6g} vs {fad_resampy:.6g}, "
          f"relative difference {relative(fad_soxr, fad_resampy):.2e}")
    fad_relu = fad(with_relu, resampy_16k)
    print(f"VGGish FAD with torchvggish's last ReLU kept vs dropped (tools' default): {fad_relu:.6g} vs "
          f"{fad_resampy:.6g}, relative difference {relative(fad_relu, fad_resampy):.2e}")

    cnn14 = references.panns_cnn14(seed=12)
    logits = {}
    for role in ("ref", "gen"):
        with torch.inference_mode():
            logits[role] = torch.cat([cnn14(torch.from_numpy(resample(w, 24_000, 32_000))[None], None)["clipwise_output"].logit() for w in sets[role]])
    kl64 = kl_divergence(logits["gen"].double(), logits["ref"].double(), "softmax").mean().item()
    gen32, ref32 = logits["gen"].float(), logits["ref"].float()
    kl32 = torch.nn.functional.kl_div((gen32.softmax(1) + 1e-6).log(), ref32.softmax(1), reduction="sum").item() / len(gen32)
    sig64 = kl_divergence(logits["gen"].double(), logits["ref"].double(), "sigmoid").mean().item()
    sig32 = torch.nn.functional.kl_div((gen32.sigmoid() + 1e-6).log(), ref32.sigmoid(), reduction="sum").item() / len(gen32)
    print(f"KL softmax, float64 (aar) vs float32 (audioldm_eval): {kl64:.8g} vs {kl32:.8g}, "
          f"relative difference {relative(kl64, kl32):.2e}")
    print(f"KL sigmoid, float64 (aar) vs float32 (audioldm_eval): {sig64:.8g} vs {sig32:.8g}, "
          f"relative difference {relative(sig64, sig32):.2e}")

    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((20, 128)), 2.0 * rng.standard_normal((25, 128))
    sa, sb = EmbeddingStats.from_embeddings(a), EmbeddingStats.from_embeddings(b)
    exact, offset = sa.distance(sb), sa.distance(sb, eps=1e-6)
    print(f"FD of 20 vs 25 embeddings of 128-d, eps fallback (1e-6) vs exact: {offset:.8g} vs {exact:.8g}, "
          f"relative difference {relative(offset, exact):.2e}")


if __name__ == "__main__":
    main()
