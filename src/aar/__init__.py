"""aar: fast autoregressive audio generation by next-scale prediction.

The public surface:

- :class:`aar.SAT` -- the Scale-level Audio Tokenizer (``encode`` / ``decode``).
- :class:`aar.SATConfig` -- its configuration dataclass (presets via ``SATConfig.preset``).
- :class:`aar.AAR` -- the next-scale transformer (``from_pretrained`` / ``generate``).
"""

__version__ = "0.1.0"

SAMPLE_RATE = 24_000

from aar.tokenizer import SAT, SATConfig  # noqa: E402
from aar.transformer import AAR, AARConfig  # noqa: E402

__all__ = ["AAR", "AARConfig", "SAT", "SATConfig", "SAMPLE_RATE", "__version__"]
