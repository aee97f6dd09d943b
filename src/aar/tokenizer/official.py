"""Import of the authors' released SAT checkpoints (``{'generator_state_dict': ...}`` ``.pth`` files).

Sizes are read from tensor shapes; the scale schedule is not stored in the file (16 codebooks
means the paper's schedule, anything else must be given). Key mapping, release -> ours:

    module.                                        (DDP prefix, dropped)
    *.conv.conv.X / *.convtr.convtr.X              -> *.X        (SEANet convs, weight_g/weight_v/bias)
    quantizer.vq.project_{in,out}.X                -> quantizer.project_{in,out}.X
    quantizer.vq.quant_resi.qresi_ls.N.X           -> quantizer.phi.N.X
    quantizer.vq.layers.N._codebook.inited         -> quantizer.codebooks.N.initialized
    quantizer.vq.layers.N._codebook.X              -> quantizer.codebooks.N.X
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from aar.checkpoint import CheckpointError, load_torch_file
from aar.tokenizer.config import PAPER_SCALES, SATConfig

_RULES = [
    (re.compile(r"\.(conv\.conv|convtr\.convtr)\."), "."),
    (re.compile(r"^quantizer\.vq\.quant_resi\.qresi_ls\."), "quantizer.phi."),
    (re.compile(r"^quantizer\.vq\.layers\.(\d+)\._codebook\.inited$"), r"quantizer.codebooks.\1.initialized"),
    (re.compile(r"^quantizer\.vq\.layers\.(\d+)\._codebook\."), r"quantizer.codebooks.\1."),
    (re.compile(r"^quantizer\.vq\.project_(in|out)\."), r"quantizer.project_\1."),
]


def map_official_key(key: str) -> str:
    """Release key -> our key (see the module docstring)."""
    key = key[len("module.") :] if key.startswith("module.") else key
    for pattern, repl in _RULES:
        key = pattern.sub(repl, key)
    return key


def official_sat_state(obj, path: str | Path = "<state>") -> dict[str, torch.Tensor]:
    """The generator state dict of a released SAT checkpoint, keys mapped to ours."""
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: not a SAT checkpoint (expected a dict, got {type(obj).__name__})")
    if "generator_state_dict" in obj:
        state = obj["generator_state_dict"]
    elif "model_state_dict" in obj:
        raise CheckpointError(f"{path}: this is an AAR transformer checkpoint, not a SAT tokenizer")
    elif any(str(k).removeprefix("module.").startswith("encoder.model.") for k in obj):
        state = obj
    else:
        raise CheckpointError(f"{path}: not a SAT checkpoint (no 'generator_state_dict')")
    return {map_official_key(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}


def _indices(state, pattern: str) -> list[int]:
    rx = re.compile(pattern)
    return sorted({int(m.group(1)) for k in state for m in [rx.match(k)] if m})


def infer_sat_config(state: dict[str, torch.Tensor], scales: list[int] | None, path="<state>") -> SATConfig:
    """Read a :class:`SATConfig` off the tensor shapes of a (mapped) released state dict."""

    def get(key):
        if key not in state:
            raise CheckpointError(f"{path}: missing key {key!r} in the SAT checkpoint")
        return state[key]

    enc_convs = _indices(state, r"^encoder\.model\.(\d+)\.weight_v$")
    if len(enc_convs) < 2:
        raise CheckpointError(f"{path}: cannot find the SEANet encoder convolutions")
    first, last, downs = enc_convs[0], enc_convs[-1], enc_convs[1:-1]
    n_filters = get(f"encoder.model.{first}.weight_v").shape[0]
    dimension = get(f"encoder.model.{last}.weight_v").shape[0]
    ratios = [get(f"encoder.model.{i}.weight_v").shape[2] // 2 for i in reversed(downs)]
    res_blocks = _indices(state, r"^encoder\.model\.(\d+)\.block\.1\.weight_v$")
    n_res = len(res_blocks) // max(1, len(downs))
    lstm_idx = _indices(state, r"^encoder\.model\.\d+\.lstm\.weight_ih_l(\d+)$")
    books = _indices(state, r"^quantizer\.codebooks\.(\d+)\.embed$")
    if not books:
        raise CheckpointError(f"{path}: no quantizer codebooks found")
    embed = get("quantizer.codebooks.0.embed")
    phis = _indices(state, r"^quantizer\.phi\.(\d+)\.weight$")
    fields = dict(
        dimension=dimension,
        n_filters=n_filters,
        ratios=ratios,
        n_residual_layers=n_res,
        lstm=len(lstm_idx),
        causal=False,
        kernel_size=get(f"encoder.model.{first}.weight_v").shape[2],
        last_kernel_size=get(f"encoder.model.{last}.weight_v").shape[2],
        latent_dim=embed.shape[1],
        codebook_size=embed.shape[0],
        phi="none" if not phis else ("shared" if len(phis) == 1 else "partial"),
        phi_count=max(1, len(phis)),
        phi_kernel=get("quantizer.phi.0.weight").shape[2] if phis else 9,
    )
    if res_blocks:
        hidden, _, rk = get(f"encoder.model.{res_blocks[0]}.block.1.weight_v").shape
        fields["residual_kernel_size"] = rk
        fields["compress"] = n_filters // hidden
    if scales is None:
        if len(books) != len(PAPER_SCALES):
            raise CheckpointError(
                f"{path}: the file has {len(books)} codebooks; its scale schedule is not stored, "
                f"so pass scales=[...] ({len(books)} increasing sizes ending at the latent length)"
            )
        scales = list(PAPER_SCALES)
    if len(scales) != len(books):
        raise CheckpointError(f"{path}: scales has {len(scales)} entries but the file has {len(books)} codebooks")
    try:
        return SATConfig(scales=list(scales), **fields)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None


def load_official_sat(path: str | Path, scales: list[int] | None = None):
    """Build a :class:`~aar.tokenizer.SAT` from a released ``.pth`` file (eval mode)."""
    from aar.tokenizer.model import SAT, _load_state

    state = official_sat_state(load_torch_file(path), path)
    cfg = infer_sat_config(state, scales, path)
    model = SAT(cfg)
    state = {k: v.reshape(1) if k.endswith(".initialized") else v for k, v in state.items()}
    _load_state(model, state, path)
    return model.eval()
