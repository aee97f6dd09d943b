import numpy as np
import pytest
import scipy.linalg

from aar.metrics import EmbeddingStats, MetricError, frechet_distance, sqrtm_psd


def random_rotation(dim: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))


def scipy_reference(mu1, sigma1, mu2, sigma2) -> float:
    """The textbook formula with scipy's general matrix square root."""
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean.real))


def test_closed_form_for_gaussians_with_commuting_covariances():
    # With S1 = Q diag(a) Q^T and S2 = Q diag(b) Q^T: FD = |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2.
    rng = np.random.default_rng(0)
    dim = 12
    q = random_rotation(dim, rng)
    a, b = rng.uniform(0.1, 4.0, dim), rng.uniform(0.1, 4.0, dim)
    mu1, mu2 = rng.standard_normal(dim), rng.standard_normal(dim)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = frechet_distance(mu1, (q * a) @ q.T, mu2, (q * b) @ q.T)
    assert got == pytest.approx(expected, rel=1e-10)


def test_one_dimensional_closed_form():
    # FD between N(1, 2^2) and N(4, 5^2) is (1 - 4)^2 + (2 - 5)^2 = 18.
    assert frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([4.0]), np.array([[25.0]])) == pytest.approx(18.0)


def test_estimated_from_samples_of_known_gaussians():
    rng = np.random.default_rng(1)
    dim = 4
    q = random_rotation(dim, rng)
    a, b = np.array([1.0, 2.0, 0.5, 3.0]), np.array([2.0, 1.0, 1.5, 0.5])
    mu1, mu2 = np.zeros(dim), np.full(dim, 0.5)
    x = rng.multivariate_normal(mu1, (q * a) @ q.T, size=40_000)
    y = rng.multivariate_normal(mu2, (q * b) @ q.T, size=40_000)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = EmbeddingStats.from_embeddings(x).distance(EmbeddingStats.from_embeddings(y))
    assert got == pytest.approx(expected, rel=0.05)


def test_matches_scipy_sqrtm_on_random_data():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((300, 24)) @ rng.standard_normal((24, 24))
    y = rng.standard_normal((300, 24)) @ rng.standard_normal((24, 24)) + 0.3
    s1, s2 = EmbeddingStats.from_embeddings(x), EmbeddingStats.from_embeddings(y)
    assert s1.distance(s2) == pytest.approx(scipy_reference(s1.mu, s1.sigma, s2.mu, s2.sigma), rel=1e-7)


def test_identical_sets_give_zero_even_when_rank_deficient():
    rng = np.random.default_rng(3)
    full = EmbeddingStats.from_embeddings(rng.standard_normal((500, 16)))
    assert full.distance(full) == pytest.approx(0.0, abs=1e-9)
    few = EmbeddingStats.from_embeddings(rng.standard_normal((5, 64)))  # 5 samples, 64 dims: rank 4
    assert few.distance(few) == pytest.approx(0.0, abs=1e-8)
    other = EmbeddingStats.from_embeddings(rng.standard_normal((5, 64)) + 1.0)
    assert np.isfinite(few.distance(other)) and few.distance(other) > 0


def test_sqrtm_psd_squares_back():
    rng = np.random.default_rng(4)
    m = rng.standard_normal((10, 6))
    psd = m @ m.T  # rank 6 of 10
    root = sqrtm_psd(psd)
    np.testing.assert_allclose(root @ root, psd, atol=1e-10)
    np.testing.assert_allclose(root, root.T)


def test_stats_save_load_round_trip_and_foreign_files(tmp_path):
    rng = np.random.default_rng(5)
    stats = EmbeddingStats.from_embeddings(rng.standard_normal((50, 8)))
    loaded = EmbeddingStats.load(stats.save(tmp_path / "ref.npz"))
    np.testing.assert_array_equal(loaded.mu, stats.mu)
    np.testing.assert_array_equal(loaded.sigma, stats.sigma)
    assert loaded.count == 50
    # pytorch-fid style statistics: only mu and sigma.
    np.savez(tmp_path / "fid.npz", mu=stats.mu, sigma=stats.sigma)
    assert EmbeddingStats.load(tmp_path / "fid.npz").distance(stats) == pytest.approx(0.0, abs=1e-9)
    np.savez(tmp_path / "bad.npz", mean=stats.mu)
    with pytest.raises(MetricError, match="bad.npz"):
        EmbeddingStats.load(tmp_path / "bad.npz")


def test_too_few_embeddings_names_the_minimum():
    with pytest.raises(MetricError, match="at least 2"):
        EmbeddingStats.from_embeddings(np.ones((1, 8)))


def test_mismatched_dimensions_are_an_error():
    with pytest.raises(MetricError, match="same backbone"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
