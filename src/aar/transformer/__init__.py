"""The AAR next-scale transformer, the next-token baseline, their building blocks and token
sampling."""

from aar.transformer.blocks import AdaLNBlock, AdaLNHead, FeedForward, KVCache, SelfAttention
from aar.transformer.config import AAR_PRESETS, AARConfig
from aar.transformer.next_scale import AAR, Generation
from aar.transformer.next_token import NextTokenAR
from aar.transformer.official import convert_official_aar
from aar.transformer.registry import ARCHITECTURES, load_transformer
from aar.transformer.sampling import GUIDANCE_SCHEDULES, filter_logits, guidance_ramp, guided_logits, sample_tokens

__all__ = [
    "AAR",
    "ARCHITECTURES",
    "AARConfig",
    "AAR_PRESETS",
    "AdaLNBlock",
    "AdaLNHead",
    "FeedForward",
    "Generation",
    "KVCache",
    "NextTokenAR",
    "SelfAttention",
    "convert_official_aar",
    "filter_logits",
    "GUIDANCE_SCHEDULES",
    "guidance_ramp",
    "guided_logits",
    "load_transformer",
    "sample_tokens",
]
