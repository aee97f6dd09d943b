"""Embedding backbones behind one interface (:class:`Backbone`), loaded by name.

=========  ======  ==========================  ===========================================
name       rate    output                      weights
=========  ======  ==========================  ===========================================
vggish     16 kHz  128-d per 0.96 s            ``vggish-10086976.pth`` (torchvggish)
panns      32 kHz  2048-d per clip, 527 logits ``Cnn14_mAP=0.431.pth`` (PANNs)
clap       48 kHz  512-d per clip              folder saved by ``transformers`` (LAION CLAP)
mel        16 kHz  128-d per 0.96 s            none (not comparable with published FADs)
=========  ======  ==========================  ===========================================
"""

from __future__ import annotations

import os

from aar.metrics.backbones.base import Backbone, BackboneOutput
from aar.metrics.backbones.clap import Clap
from aar.metrics.backbones.mel import LogMelStatistics
from aar.metrics.backbones.panns import Cnn14
from aar.metrics.backbones.vggish import VGGish
from aar.metrics.errors import MetricError

BACKBONES = {"vggish": VGGish, "panns": Cnn14, "clap": Clap, "mel": LogMelStatistics}
WEIGHTS_ENV = {"vggish": "AAR_VGGISH_WEIGHTS", "panns": "AAR_PANNS_WEIGHTS", "clap": "AAR_CLAP_WEIGHTS"}
WEIGHTS_HINT = {
    "vggish": "the torchvggish state dict vggish-10086976.pth",
    "panns": "the PANNs checkpoint Cnn14_mAP=0.431.pth",
    "clap": "a folder saved with ClapModel/ClapProcessor.save_pretrained, e.g. laion/larger_clap_general",
}


def load_backbone(name: str, weights: str | os.PathLike | None = None, device: str | None = None) -> Backbone:
    """Build backbone ``name`` in eval mode on ``device`` (default CPU).

    ``weights`` is a local path; when omitted, the environment variable of :data:`WEIGHTS_ENV` is
    read. The ``mel`` backbone takes no weights.
    """
    if name not in BACKBONES:
        raise MetricError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    if name == "mel":
        if weights is not None:
            raise MetricError("the 'mel' backbone has no weights; drop --weights")
        backbone = LogMelStatistics()
    else:
        weights = weights or os.environ.get(WEIGHTS_ENV[name])
        if not weights:
            raise MetricError(
                f"the {name} backbone needs its weights: pass --weights PATH ({WEIGHTS_HINT[name]}) "
                f"or set {WEIGHTS_ENV[name]}"
            )
        backbone = BACKBONES[name].from_weights(weights)
    return backbone.to(device or "cpu").eval()


__all__ = [
    "BACKBONES",
    "Backbone",
    "BackboneOutput",
    "Clap",
    "Cnn14",
    "LogMelStatistics",
    "VGGish",
    "WEIGHTS_ENV",
    "load_backbone",
]
