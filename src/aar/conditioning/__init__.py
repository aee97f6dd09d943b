"""Conditioning: from a prompt (audio, text, class label or nothing) to the AAR's ``cond``.

- :class:`ClapAudioConditioner` -- CLAP audio embeddings (what the paper trains on).
- :class:`ClapTextConditioner` -- CLAP text embeddings (same space; prompt with text).
- :class:`LabelConditioner` -- class names -> ids for ``condition="label"`` models.
- :class:`Unconditional` -- the null condition.
"""

from aar.conditioning.base import Conditioner
from aar.conditioning.clap import CLAP_SAMPLE_RATE, ClapAudioConditioner, ClapEmbedder, ClapTextConditioner
from aar.conditioning.labels import LabelConditioner
from aar.conditioning.unconditional import Unconditional

__all__ = [
    "CLAP_SAMPLE_RATE",
    "ClapAudioConditioner",
    "ClapEmbedder",
    "ClapTextConditioner",
    "Conditioner",
    "LabelConditioner",
    "Unconditional",
]
