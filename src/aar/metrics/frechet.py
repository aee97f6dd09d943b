"""Fréchet distance between two sets of embeddings (the "FAD" of audio generation papers).

For Gaussians fitted to the two sets, ``N(mu_1, S_1)`` and ``N(mu_2, S_2)``::

    FD = |mu_1 - mu_2|^2 + tr(S_1) + tr(S_2) - 2 tr((S_1 S_2)^{1/2})

The trace of the matrix square root is computed as ``tr((S_1^{1/2} S_2 S_1^{1/2})^{1/2})``, which
has the same eigenvalues as ``(S_1 S_2)^{1/2}`` but is symmetric positive semi-definite, so both
square roots come from symmetric eigendecompositions (real, no ``sqrtm`` iterations, no
imaginary residue, stable for the rank-deficient covariances of small sets). Means and
covariances are estimated in float64 with the unbiased (``N - 1``) covariance, as pytorch-fid and
the Google FAD tool do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aar.checkpoint import atomic_path
from aar.metrics.errors import MetricError

MIN_EMBEDDINGS = 2


def sqrtm_psd(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite ``[D x D]`` matrix by eigendecomposition.

    The matrix is symmetrised first; eigenvalues below zero (rounding) are clipped to zero.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    eigvals, eigvecs = np.linalg.eigh((matrix + matrix.T) / 2.0)
    return (eigvecs * np.sqrt(np.clip(eigvals, 0.0, None))) @ eigvecs.T


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 0.0
) -> float:
    """Fréchet distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)`` (means ``[D]``, covariances ``[D x D]``).

    ``eps`` adds ``eps * I`` to both covariances inside the square-root term only, which is what
    pytorch-fid-style references (audioldm_eval, frechet_audio_distance) fall back to, with
    ``eps = 1e-6``, when SciPy's ``sqrtm`` of a singular product is not finite; the default 0 is
    their regular result. The result is clipped at 0 (identical statistics give ``-1e-12``-sized
    rounding otherwise).
    """
    mu1, mu2 = np.asarray(mu1, dtype=np.float64), np.asarray(mu2, dtype=np.float64)
    sigma1, sigma2 = np.asarray(sigma1, dtype=np.float64), np.asarray(sigma2, dtype=np.float64)
    dim = mu1.shape[0]
    if mu1.shape != (dim,) or mu2.shape != (dim,) or sigma1.shape != (dim, dim) or sigma2.shape != (dim, dim):
        raise MetricError(
            f"statistics do not match: means {mu1.shape} and {mu2.shape}, covariances {sigma1.shape} and "
            f"{sigma2.shape} (were they computed with the same backbone?)"
        )
    offset = eps * np.eye(dim)
    root1 = sqrtm_psd(sigma1 + offset)
    inner = root1 @ (sigma2 + offset) @ root1
    eigvals = np.linalg.eigvalsh((inner + inner.T) / 2.0)
    trace_sqrt = np.sqrt(np.clip(eigvals, 0.0, None)).sum()
    diff = mu1 - mu2
    distance = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt
    return float(max(distance, 0.0))


@dataclass
class EmbeddingStats:
    """Mean ``[D]`` and covariance ``[D x D]`` of a set of ``count`` embeddings.

    Saved as ``.npz`` with the keys ``mu`` and ``sigma`` (the layout pytorch-fid and most FAD tools
    use, so their statistics files load here too) plus ``count``.
    """

    mu: np.ndarray
    sigma: np.ndarray
    count: int

    @classmethod
    def from_embeddings(cls, embeddings: np.ndarray, what: str = "the set") -> "EmbeddingStats":
        """Statistics of ``embeddings`` ``[N x D]``; needs ``N >= 2`` for a covariance."""
        embeddings = np.asarray(embeddings, dtype=np.float64)
        if embeddings.ndim != 2:
            raise MetricError(f"embeddings of {what} must be [N x D], got shape {embeddings.shape}")
        count = embeddings.shape[0]
        if count < MIN_EMBEDDINGS:
            raise MetricError(
                f"{what} gave {count} embedding(s); a covariance estimate needs at least {MIN_EMBEDDINGS}"
            )
        return cls(mu=embeddings.mean(axis=0), sigma=np.cov(embeddings, rowvar=False), count=count)

    @property
    def dim(self) -> int:
        return int(self.mu.shape[0])

    def distance(self, other: "EmbeddingStats", eps: float = 0.0) -> float:
        """Fréchet distance to ``other`` (``eps``: see :func:`frechet_distance`)."""
        return frechet_distance(self.mu, self.sigma, other.mu, other.sigma, eps=eps)

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``mu``, ``sigma`` and ``count`` to ``path`` (``.npz``), atomically."""
        path = Path(path)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, mu=self.mu, sigma=self.sigma, count=np.int64(self.count))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "EmbeddingStats":
        """Read statistics written by :meth:`save` (or any ``.npz`` with ``mu`` and ``sigma``)."""
        path = Path(path)
        try:
            with np.load(path) as data:
                mu, sigma = data["mu"], data["sigma"]
                count = int(data["count"]) if "count" in data.files else 0
        except FileNotFoundError:
            raise MetricError(f"{path}: no such statistics file") from None
        except (KeyError, ValueError, OSError) as exc:
            raise MetricError(f"{path}: not a statistics file with 'mu' and 'sigma' ({exc})") from None
        if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
            raise MetricError(f"{path}: 'mu' {mu.shape} and 'sigma' {sigma.shape} do not describe one Gaussian")
        return cls(mu=mu.astype(np.float64), sigma=sigma.astype(np.float64), count=count)
