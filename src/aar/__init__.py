"""aar: fast autoregressive audio generation by next-scale prediction.

The public surface:

- :class:`aar.SAT` -- the Scale-level Audio Tokenizer (``encode`` / ``decode``).
- :class:`aar.SATConfig` -- its configuration dataclass (presets via ``SATConfig.preset``).
- :class:`aar.AAR` -- the next-scale transformer (``from_pretrained`` / ``generate``).
"""

from importlib.metadata import PackageNotFoundError as _NotInstalled
from importlib.metadata import version as _dist_version

#: The distribution's name on the package index: the import name ``aar`` is also taken there by
#: an unrelated project, so install with ``pip install aar-audio``.
DISTRIBUTION = "aar-audio"

try:  # one source for the version: pyproject.toml, read back from the installed metadata
    __version__ = _dist_version(DISTRIBUTION)
except _NotInstalled:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

SAMPLE_RATE = 24_000

from aar.tokenizer import SAT, SATConfig  # noqa: E402
from aar.transformer import AAR, AARConfig  # noqa: E402

__all__ = ["AAR", "AARConfig", "SAT", "SATConfig", "SAMPLE_RATE", "__version__"]
