import numpy as np
import pytest
import torch

from aar.metrics import MetricError, inception_score, kl_divergence


def one_hot_logits(labels: np.ndarray, classes: int, scale: float = 100.0) -> torch.Tensor:
    """Logits whose softmax is one-hot (to double precision) on ``labels``."""
    return torch.from_numpy(np.eye(classes)[labels] * scale)


@pytest.mark.parametrize("k", [1, 4, 10])
def test_isc_of_one_hot_uniform_classifier_is_k(k):
    classes = 12
    # 10 splits of k clips, each split holding every one of the k classes once.
    labels = np.tile(np.arange(k), 10)
    mean, std = inception_score(one_hot_logits(labels, classes), splits=10, shuffle_seed=None)
    assert mean == pytest.approx(k, rel=1e-9)
    assert std == pytest.approx(0.0, abs=1e-9)
    # One split, any order.
    mean, _ = inception_score(one_hot_logits(labels, classes), splits=1, shuffle_seed=2020)
    assert mean == pytest.approx(k, rel=1e-9)


def test_isc_is_one_when_every_clip_gets_the_same_distribution():
    logits = torch.randn(1, 527).repeat(40, 1)
    mean, _ = inception_score(logits)
    assert mean == pytest.approx(1.0, abs=1e-9)


def test_isc_needs_at_least_one_clip_per_split():
    with pytest.raises(MetricError, match="at least 10 clips"):
        inception_score(torch.randn(9, 527), splits=10)


@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
def test_kl_of_identical_outputs_is_zero(activation):
    logits = torch.randn(6, 527, generator=torch.Generator().manual_seed(0)) * 3
    exact = kl_divergence(logits, logits.clone(), activation, eps=0.0)
    assert torch.allclose(exact, torch.zeros(6, dtype=exact.dtype), atol=1e-12)
    # With the tool-chain's eps (1e-6) inside the log, the value is within classes * eps of zero.
    assert kl_divergence(logits, logits, activation).abs().max() <= 527 * 1e-6


def test_kl_matches_the_formula_and_direction():
    rng = np.random.default_rng(1)
    gen, ref = rng.standard_normal((5, 7)), rng.standard_normal((5, 7))

    def softmax(x):
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    p, q = softmax(ref), softmax(gen)  # KL(reference || generated)
    expected = np.sum(p * (np.log(p) - np.log(q + 1e-6)), axis=1)
    got = kl_divergence(torch.from_numpy(gen), torch.from_numpy(ref), "softmax")
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10)
    s_ref, s_gen = 1 / (1 + np.exp(-ref)), 1 / (1 + np.exp(-gen))
    expected_sigmoid = np.sum(s_ref * (np.log(s_ref) - np.log(s_gen + 1e-6)), axis=1)
    got_sigmoid = kl_divergence(torch.from_numpy(gen), torch.from_numpy(ref), "sigmoid")
    np.testing.assert_allclose(got_sigmoid.numpy(), expected_sigmoid, rtol=1e-10)
    assert (got > 0).all()


def test_kl_rejects_mismatched_pairs():
    with pytest.raises(MetricError, match="paired logits"):
        kl_divergence(torch.randn(3, 527), torch.randn(4, 527))
