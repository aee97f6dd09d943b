"""The AAR next-scale transformer, its building blocks and token sampling."""

from aar.transformer.blocks import AdaLNBlock, AdaLNHead, FeedForward, KVCache, SelfAttention
from aar.transformer.config import AAR_PRESETS, AARConfig
from aar.transformer.next_scale import AAR, Generation
from aar.transformer.official import convert_official_aar
from aar.transformer.sampling import filter_logits, guidance_ramp, guided_logits, sample_tokens

__all__ = [
    "AAR",
    "AARConfig",
    "AAR_PRESETS",
    "AdaLNBlock",
    "AdaLNHead",
    "FeedForward",
    "Generation",
    "KVCache",
    "SelfAttention",
    "convert_official_aar",
    "filter_logits",
    "guidance_ramp",
    "guided_logits",
    "sample_tokens",
]
