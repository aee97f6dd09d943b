"""Evaluation metrics of the paper, with the conventions of the published tool-chains.

- Reconstruction: :class:`MelDistance`, :class:`STFTDistance` (multi-resolution spectral
  distances between paired clips), FAD.
- Generation: FAD (:func:`frechet_distance`, :class:`EmbeddingStats`), :func:`inception_score`,
  :func:`kl_divergence` over an AudioSet classifier.
- Embedding backbones: :func:`load_backbone` (``vggish``, ``panns``, ``clap``, ``mel``).
- Whole folders: :func:`evaluate_folders` (what ``aar evaluate`` runs).
"""

from aar.metrics.backbones import BACKBONES, Backbone, BackboneOutput, load_backbone
from aar.metrics.classifier import inception_score, kl_divergence
from aar.metrics.errors import MetricError
from aar.metrics.evaluate import METRICS, embed_clips, evaluate_folders
from aar.metrics.frechet import EmbeddingStats, frechet_distance, sqrtm_psd
from aar.metrics.spectral import MelDistance, STFTDistance, mel_distance, stft_distance

__all__ = [
    "BACKBONES",
    "Backbone",
    "BackboneOutput",
    "EmbeddingStats",
    "METRICS",
    "MelDistance",
    "MetricError",
    "STFTDistance",
    "embed_clips",
    "evaluate_folders",
    "frechet_distance",
    "inception_score",
    "kl_divergence",
    "load_backbone",
    "mel_distance",
    "sqrtm_psd",
    "stft_distance",
]
