"""The Scale-level Audio Tokenizer: SEANet encoder/decoder + multi-scale residual quantizer."""

from aar.tokenizer.config import (
    PAPER_SCALES,
    SAT_PRESETS,
    SATConfig,
    linear_schedule,
    quadratic_schedule,
    validate_scales,
)
from aar.tokenizer.model import SAT

__all__ = [
    "PAPER_SCALES",
    "SAT",
    "SATConfig",
    "SAT_PRESETS",
    "linear_schedule",
    "quadratic_schedule",
    "validate_scales",
]
