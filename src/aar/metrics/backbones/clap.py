"""CLAP audio embeddings (LAION CLAP through ``transformers``), loaded from a local folder.

The folder is what ``ClapModel.save_pretrained`` plus ``ClapProcessor``/``ClapFeatureExtractor``
``.save_pretrained`` write (``config.json``, the weights, ``preprocessor_config.json``), e.g. a
downloaded copy of ``laion/larger_clap_general``. The feature extractor is CLAP's own (48 kHz,
its log-mel front end), since the network was trained on exactly that input.

Conventions: clips longer than the extractor's ``max_length_s`` (10 s) are cut to their first
``max_length_s`` seconds and shorter ones are repeat-padded (CLAP's ``repeatpad``), so nothing
random happens; the embedding is the projected, L2-normalised audio embedding
(``ClapModel.get_audio_features``), one per clip.
"""

from __future__ import annotations

from pathlib import Path

import torch

from aar.checkpoint import CheckpointError
from aar.metrics.backbones.base import Backbone, BackboneOutput


class Clap(Backbone):
    """CLAP: ``forward(Tensor[B x T] at 48 kHz)`` -> ``embeddings`` ``[B x 1 x D]`` (D = projection size, 512)."""

    name = "clap"

    def __init__(self, model, feature_extractor):
        super().__init__()
        self.model = model.eval()
        self.feature_extractor = feature_extractor
        self.sample_rate = int(feature_extractor.sampling_rate)
        self.embedding_dim = int(model.config.projection_dim)
        self.max_samples = int(feature_extractor.nb_max_samples)
        self.fused = bool(model.config.audio_config.enable_fusion)

    def forward(self, wav: torch.Tensor) -> BackboneOutput:
        clips = [clip for clip in wav[:, : self.max_samples].float().cpu().numpy()]
        features = self.feature_extractor(
            clips,
            sampling_rate=self.sample_rate,
            truncation="fusion" if self.fused else "rand_trunc",
            padding="repeatpad",
            return_tensors="pt",
        )
        device = next(self.model.parameters()).device
        # No clip exceeds max_length_s, so none is "longer"; the extractor would otherwise flag a
        # random clip of an all-short batch for fused models.
        is_longer = torch.zeros_like(features["is_longer"], dtype=torch.bool)
        output = self.model.get_audio_features(
            input_features=features["input_features"].to(device), is_longer=is_longer.to(device)
        )
        embedding = output if isinstance(output, torch.Tensor) else output.pooler_output
        return BackboneOutput(embeddings=embedding.float().unsqueeze(1))

    @classmethod
    def from_weights(cls, path) -> "Clap":
        """Load ``ClapModel`` and its feature extractor from the local folder ``path``."""
        path = Path(path)
        if not path.is_dir() or not (path / "config.json").is_file():
            raise CheckpointError(f"{path}: not a CLAP folder (expected config.json and weights from save_pretrained)")
        if not (path / "preprocessor_config.json").is_file():
            raise CheckpointError(
                f"{path}: no preprocessor_config.json (save the ClapProcessor or ClapFeatureExtractor into the folder too)"
            )
        try:
            from transformers import ClapFeatureExtractor, ClapModel
        except ImportError:
            raise CheckpointError("the CLAP backbone needs transformers: pip install 'aar-audio[clap]'") from None
        try:
            model = ClapModel.from_pretrained(path, local_files_only=True)
            extractor = ClapFeatureExtractor.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: cannot load a CLAP model ({exc})") from None
        backbone = cls(model, extractor)
        backbone.weights = str(path)
        return backbone.eval()
