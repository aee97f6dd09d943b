"""Import of the authors' released AAR checkpoints (``{'model_state_dict': ...}`` ``.pth``).

Sizes come from tensor shapes: depth from the block count, width from ``pos_1LC``, heads
from the cosine-attention scales (``depth`` heads without them, as the release builds it),
the condition size from ``class_emb``; the scale schedule from the run lengths of the
``lvl_1L`` buffer. ``uncond_embedding`` (the null condition) is taken from the file.
Key mapping, release -> ours:

    module.                                  (DDP prefix, dropped)
    pos_start / pos_1LC                      -> start_pos / pos_embed
    lvl_embed.weight                         -> level_embed.weight
    class_emb.fc{1,2}.weight                 -> cond_mlp.fc{1,2}.weight
    blocks.N.attn.mat_qkv.weight             -> blocks.N.attn.qkv.weight
    blocks.N.attn.scale_mul_1H11             -> blocks.N.attn.log_scale
    blocks.N.ffn.fc{1,2}.X                   -> blocks.N.mlp.fc{1,2}.X
    blocks.N.ada_lin.1.X                     -> blocks.N.adaln.X
    head_nm.ada_lin.1.X / head.X             -> head.adaln.X / head.out.X
    lvl_1L, attn_bias_for_masking,
    blocks.N.attn.zero_k_bias                (derived from the config: checked, not loaded)
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from aar.checkpoint import CheckpointError, load_torch_file
from aar.transformer.config import AARConfig

_RULES = [
    (re.compile(r"^pos_start$"), "start_pos"),
    (re.compile(r"^pos_1LC$"), "pos_embed"),
    (re.compile(r"^lvl_embed\."), "level_embed."),
    (re.compile(r"^class_emb\."), "cond_mlp."),
    (re.compile(r"\.attn\.mat_qkv\."), ".attn.qkv."),
    (re.compile(r"\.attn\.scale_mul_1H11$"), ".attn.log_scale"),
    (re.compile(r"\.ffn\."), ".mlp."),
    (re.compile(r"^(blocks\.\d+)\.ada_lin\.1\."), r"\1.adaln."),
    (re.compile(r"^head_nm\.ada_lin\.1\."), "head.adaln."),
    (re.compile(r"^head\.(weight|bias)$"), r"head.out.\1"),
]
_DERIVED = re.compile(r"^(lvl_1L|attn_bias_for_masking|blocks\.\d+\.attn\.zero_k_bias)$")


def map_official_key(key: str) -> str:
    """Release key (without ``module.``) -> our key (see the module docstring)."""
    for pattern, repl in _RULES:
        key = pattern.sub(repl, key)
    return key


def official_aar_state(obj, path: str | Path = "<state>") -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Split a released AAR checkpoint into (weights under our keys, derived buffers under the
    release's keys: ``lvl_1L``, ``attn_bias_for_masking``, ``blocks.N.attn.zero_k_bias``)."""
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: not an AAR checkpoint (expected a dict, got {type(obj).__name__})")
    if "model_state_dict" in obj:
        state = obj["model_state_dict"]
    elif "generator_state_dict" in obj:
        raise CheckpointError(f"{path}: this is a SAT tokenizer checkpoint, not an AAR transformer")
    elif any(str(k).removeprefix("module.") == "pos_1LC" for k in obj):
        state = obj
    else:
        raise CheckpointError(f"{path}: not an AAR checkpoint (no 'model_state_dict')")
    weights, derived = {}, {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue
        key = key.removeprefix("module.")
        if _DERIVED.match(key):
            derived[key] = value
        else:
            weights[map_official_key(key)] = value
    return weights, derived


def scales_from_levels(levels: torch.Tensor) -> list[int]:
    """Run lengths of the level index ``[1 x L]`` (0, 0, 1, 1, 1, 1, ...) -> the scale list."""
    levels = levels.reshape(-1)
    _, counts = torch.unique_consecutive(levels, return_counts=True)
    if not torch.equal(torch.unique_consecutive(levels), torch.arange(len(counts))):
        raise ValueError("lvl_1L is not 0, 1, 2, ... in runs")
    return counts.tolist()


def _indices(state, pattern: str) -> list[int]:
    rx = re.compile(pattern)
    return sorted({int(m.group(1)) for k in state for m in [rx.match(k)] if m})


def infer_aar_config(
    weights: dict[str, torch.Tensor],
    derived: dict[str, torch.Tensor],
    scales: list[int] | None = None,
    path="<state>",
) -> AARConfig:
    """Read an :class:`AARConfig` off tensor shapes (and ``lvl_1L`` for the scales unless
    ``scales`` is given, e.g. for shape-only states on the meta device)."""

    def get(key):
        if key not in weights:
            raise CheckpointError(f"{path}: missing key {key!r} in the AAR checkpoint")
        return weights[key]

    blocks = _indices(weights, r"^blocks\.(\d+)\.attn\.qkv\.weight$")
    if not blocks or blocks != list(range(len(blocks))):
        raise CheckpointError(f"{path}: cannot find the transformer blocks")
    depth = len(blocks)
    length, width = get("pos_embed").shape[1:]
    log_scale = weights.get("blocks.0.attn.log_scale")
    if scales is None:
        levels = derived.get("lvl_1L")
        if levels is None:
            raise CheckpointError(f"{path}: no lvl_1L buffer to read the scale schedule from; pass scales=")
        try:
            scales = scales_from_levels(levels)
        except ValueError as exc:
            raise CheckpointError(f"{path}: {exc}") from None
    if sum(scales) != length:
        raise CheckpointError(f"{path}: scales {scales} sum to {sum(scales)}, but pos_1LC has {length} positions")
    try:
        return AARConfig(
            depth=depth,
            width=width,
            num_heads=log_scale.shape[1] if log_scale is not None else depth,
            mlp_ratio=get("blocks.0.mlp.fc1.weight").shape[0] / width,
            cos_attn=log_scale is not None,
            condition="clap",
            cond_dim=get("cond_mlp.fc1.weight").shape[1],
            scales=list(scales),
            latent_dim=get("word_embed.weight").shape[1],
            vocab_size=get("head.out.weight").shape[0],
        )
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None


def _check_derived(model, derived: dict[str, torch.Tensor], path) -> None:
    """The buffers we derive from the config must agree with the file's copies."""
    mask = derived.get("attn_bias_for_masking")
    if mask is not None and not mask.is_meta:
        if not torch.equal(mask.reshape(mask.shape[-2:]) == 0, model.attn_mask.cpu()):
            raise CheckpointError(f"{path}: attn_bias_for_masking is not the block-causal mask of the scales")
    for key, value in derived.items():
        if key.endswith("zero_k_bias") and not value.is_meta and bool(value.any()):
            raise CheckpointError(f"{path}: {key} is not zero; the model would differ from the release")


def load_official_aar(path: str | Path, tokenizer):
    """Build an :class:`~aar.transformer.AAR` from a released ``.pth`` and its paired tokenizer."""
    from aar.transformer.next_scale import AAR, load_state_strict

    weights, derived = official_aar_state(load_torch_file(path), path)
    config = infer_aar_config(weights, derived, path=path)
    tok = tokenizer.config
    if (tok.latent_dim, tok.codebook_size, list(tok.scales)) != (config.latent_dim, config.vocab_size, config.scales):
        raise CheckpointError(
            f"{path}: the tokenizer does not match this AAR (tokenizer latent_dim {tok.latent_dim}, "
            f"codebook {tok.codebook_size}, scales {tok.scales}; AAR expects {config.latent_dim}, "
            f"{config.vocab_size}, {config.scales})"
        )
    model = AAR(config, tokenizer)
    _check_derived(model, derived, path)
    load_state_strict(model, weights, path)
    return model.eval()


def convert_official_aar(path: str | Path, out_dir: str | Path, tokenizer) -> Path:
    """Convert a released AAR ``.pth`` (plus its tokenizer: a SAT or its path) into our
    self-contained folder format (weights, config and ``tokenizer/``)."""
    from aar.transformer.next_scale import AAR

    return AAR.from_pretrained(path, tokenizer=tokenizer).save_pretrained(out_dir)
