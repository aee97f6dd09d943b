"""Discriminator layout (against the released manifest), loss formulas, LR schedule, accumulation."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from aar.audio.spectral import MelSpectrogram
from aar.tokenizer.discriminator import MultiScaleSTFTDiscriminator
from aar.tokenizer.losses import (
    GeneratorLoss,
    MultiScaleMelLoss,
    adversarial_loss,
    discriminator_loss,
    feature_matching_loss,
    mel_distance,
    stft_distance,
)
from aar.train.optim import OptimConfig, Optimization, lr_factor
from tests.conftest import official, sine_mix


def test_discriminator_matches_the_released_parameter_layout():
    manifest = json.loads(official("manifests", "msstftd_sat_yaml.json").read_text())
    released = {k: v["shape"] for k, v in manifest["state_dict"].items() if ".spec_transform." not in k}
    disc = MultiScaleSTFTDiscriminator()
    ours = {k: list(v.shape) for k, v in disc.state_dict().items()}
    assert ours == released
    assert sum(p.numel() for p in disc.parameters() if p.requires_grad) == manifest["trainable_params"]


def test_discriminator_outputs_and_spectrogram_layout():
    disc = MultiScaleSTFTDiscriminator()
    wav = sine_mix(2)
    logits, features = disc(wav)
    assert len(logits) == len(features) == 5
    assert all(len(f) == 5 for f in features)
    # n_fft 1024 / hop 256 without centring: 90 frames; 513 bins halved by the 3 strided convs
    assert logits[0].shape == (2, 1, 90, 65) and features[0][0].shape == (2, 32, 90, 513)
    spec = disc.discriminators[0].spectrogram(wav)
    ref = torch.stft(wav[:, 0], 1024, 256, window=torch.hann_window(1024), center=False, return_complex=True)
    ref = ref.transpose(1, 2) / math.sqrt(512)
    torch.testing.assert_close(spec[:, 0], ref.real, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(spec[:, 1], ref.imag, rtol=1e-4, atol=1e-5)


def test_hinge_and_feature_losses_on_known_values():
    real = [torch.tensor([2.0, 0.5]), torch.tensor([-1.0])]
    fake = [torch.tensor([-2.0, 0.0]), torch.tensor([3.0])]
    # D: mean over discs of [mean relu(1 - real) + mean relu(1 + fake)] = ((0 + .25) + 0.5) + (2 + 4)) / 2
    assert discriminator_loss(real, fake).item() == pytest.approx(((0.25 + 0.5) + (2.0 + 4.0)) / 2)
    # G: mean over discs of mean relu(1 - fake) = (mean(3, 1) + 0) / 2
    assert adversarial_loss(fake).item() == pytest.approx((2.0 + 0.0) / 2)
    f_real = [[torch.full((2, 3), 2.0), torch.full((4,), -1.0)]]
    f_fake = [[torch.full((2, 3), 1.0), torch.full((4,), -1.0)]]
    assert feature_matching_loss(f_real, f_fake).item() == pytest.approx((0.5 + 0.0) / 2)


def test_frequency_loss_follows_the_released_recipe():
    loss = MultiScaleMelLoss()
    assert [m.n_fft for m in loss.mels] == [32, 64, 128, 256, 512, 1024, 2048]
    assert all(m.hop_length == m.n_fft // 4 and not m.center for m in loss.mels)
    x, y = sine_mix(2, seed=1), sine_mix(2, seed=2)
    assert loss(x, x).item() == 0.0
    expected = sum(
        F.l1_loss(m(y), m(x)) + F.mse_loss(m(y), m(x))
        for m in (MelSpectrogram(24_000, 2**i, 2**i // 4, n_mels=64, center=False) for i in range(5, 12))
    )
    torch.testing.assert_close(loss(x, y), expected)


def test_generator_loss_weights():
    gen = GeneratorLoss()
    x, y = sine_mix(1, seed=3), sine_mix(1, seed=4)
    commit = torch.tensor(0.5)
    logits = [torch.tensor([0.25])]
    feats_r, feats_f = [[torch.ones(3)]], [[torch.zeros(3)]]
    total, parts = gen(x, y, commit, logits, feats_r, feats_f)
    expected = 3 * 0.75 + 3 * 1.0 + 0.1 * parts["time"] + parts["freq"] + 0.5
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert parts["adv"].item() == 0.75 and parts["feat"].item() == 1.0


def test_validation_distances():
    x, y = sine_mix(2, seed=5), sine_mix(2, seed=6)
    assert mel_distance(x, x).tolist() == [0.0, 0.0] and stft_distance(x, x).tolist() == [0.0, 0.0]
    far, near = mel_distance(x, torch.zeros_like(x)), mel_distance(x, x + 0.01 * y)
    assert far.shape == (2,) and (far > 10 * near).all()
    assert (stft_distance(x, torch.zeros_like(x)) > stft_distance(x, x + 0.01 * y)).all()


def test_warmup_cosine_schedule():
    assert lr_factor(0, 100, 10) == pytest.approx(0.1)
    assert lr_factor(9, 100, 10) == pytest.approx(1.0)
    assert lr_factor(10, 100, 10) == pytest.approx(1.0)
    assert lr_factor(99, 100, 10, min_ratio=0.1) == pytest.approx(0.1)
    mid = 10 + (99 - 10) / 2
    assert lr_factor(int(mid), 100, 10) == pytest.approx(0.5 * (1 + math.cos(math.pi * (int(mid) - 10) / 89)))
    assert all(lr_factor(s, 100, 10) >= lr_factor(s + 1, 100, 10) for s in range(10, 99))


def test_accumulated_micro_batches_equal_one_batch():
    torch.manual_seed(0)
    x, y = torch.randn(8, 5), torch.randn(8, 1)
    models = [torch.nn.Linear(5, 1) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    cfg = OptimConfig(name="adamw", lr=0.1, weight_decay=0.1, clip_grad=0.5)
    opts = [Optimization(m, cfg, total_steps=10, warmup_steps=2) for m in models]
    F.mse_loss(models[0](x), y).backward()
    opts[0].step(3)
    for xs, ys in zip(x.split(4), y.split(4)):
        (F.mse_loss(models[1](xs), ys) / 2).backward()
    stats = opts[1].step(3)
    assert stats["lr"] == pytest.approx(0.1 * lr_factor(3, 10, 2))
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(a, b)
    groups = opts[0].optimizer.param_groups
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]  # no decay on the bias
