"""Which precision a transformer runs in, chosen from what the device supports.

A reduced precision is used only where the hardware runs it fast; otherwise the choice falls
back to one that works and says so in one line (:attr:`Precision.note`):

- ``bfloat16`` on a CPU needs bfloat16 units (AVX512-BF16 or AMX). Without them PyTorch
  emulates it through float32 conversions, several times slower than float32 itself (measured
  on an AVX2 CPU: 18 against 130 GFLOP/s), so float32 runs instead. On CUDA it needs
  ``torch.cuda.is_bf16_supported()``.
- ``int8`` (CPU only) keeps float32 activations and serves the per-token matrix products from
  int8 weights (:func:`aar.transformer.fast_linear.quantize_int8`). It is never chosen
  by ``auto``: it trades accuracy for speed, a trade the user makes.
- ``float16`` (the tokenizer's codec only): on CUDA, or on a CPU with float16 units
  (AVX512-FP16 or AMX-FP16); elsewhere float32.
- ``auto``: bfloat16 where the device runs it fast, else float32.

The tokenizer's ``--dtype`` follows the same rule (:func:`choose_precision` with
``CODEC_PRECISIONS``): on an AVX2 CPU its bfloat16 and float16 convolutions are about 8x
slower than float32 (0.24 s against 1.96 s and 2.01 s for 1 s of audio, one thread).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from aar.transformer.fast_linear import cpu_support, dequantize_int8, quantize_int8

PRECISIONS = ("float32", "bfloat16", "int8", "auto")
"""What a transformer can be asked to run in."""
CODEC_PRECISIONS = ("float32", "bfloat16", "float16")
"""What the tokenizer's encoder and decoder can be asked to run in."""
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "int8": torch.float32}


@dataclass(frozen=True)
class Precision:
    """What runs: ``name`` (``float32``, ``bfloat16`` or ``int8``), the parameters' ``dtype``,
    what was asked for, and one line that says what was chosen and why."""

    name: str
    dtype: torch.dtype
    requested: str
    note: str


def _device_words(device: torch.device) -> str:
    if device.type == "cpu":
        return f"CPU ({cpu_support().capability})"
    return str(device)


def _fast_half(name: str, device: torch.device) -> tuple[bool, str]:
    """(whether ``device`` runs ``name`` (bfloat16 or float16) fast, why not)."""
    if device.type == "cuda":
        if name == "float16":
            return True, ""
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(), "this GPU has no bfloat16 support"
    if device.type == "cpu":
        support = cpu_support()
        if name == "bfloat16":
            return support.native_bf16, ("this CPU has no bfloat16 units (AVX512-BF16 or AMX), and emulated "
                                         "bfloat16 is slower than float32")
        return support.native_fp16, ("this CPU has no float16 units (AVX512-FP16 or AMX-FP16), and emulated "
                                     "float16 is slower than float32")
    return False, f"{name} speed on {device.type} is unknown"


def choose_precision(requested: str, device: torch.device | str, allowed: tuple[str, ...] = PRECISIONS) -> Precision:
    """The precision to run for ``requested`` (one of ``allowed``: :data:`PRECISIONS` for a
    transformer, :data:`CODEC_PRECISIONS` for the tokenizer) on ``device``."""
    if requested not in allowed:
        raise ValueError(f"precision must be one of {', '.join(allowed)}, got {requested!r}")
    device = torch.device(device)
    where = _device_words(device)
    half = "bfloat16" if requested in ("bfloat16", "auto") else requested
    fast_half, why_not = _fast_half(half, device) if half in ("bfloat16", "float16") else (False, "")

    def chosen(name: str, note: str) -> Precision:
        return Precision(name, _DTYPES[name], requested, note)

    if requested == "float32":
        return chosen("float32", f"precision: float32 on {where}")
    if requested == "int8":
        if device.type != "cpu":
            return chosen("float32", f"precision: float32 on {where} (int8 weights are a CPU path)")
        if not cpu_support().int8:
            return chosen("float32", f"precision: float32 on {where} (this PyTorch has no int8 linear for this CPU)")
        return chosen("int8", f"precision: int8 weights, float32 activations on {where}")
    if fast_half:
        return chosen(half, f"precision: {half} on {where}")
    if requested == "auto":
        return chosen("float32", f"precision: float32 on {where} (auto: {why_not})")
    return chosen("float32", f"precision: float32 on {where}, not {half}: {why_not}")


def apply_precision(model: nn.Module, precision: Precision) -> nn.Module:
    """Put ``model`` (an AAR or next-token model) in ``precision``; returns it."""
    model = model.to(precision.dtype)
    dequantize_int8(model)
    if precision.name == "int8":
        for block in model.blocks:
            quantize_int8(block.attn)
            quantize_int8(block.mlp)
        quantize_int8(model.head.out)
    return model
