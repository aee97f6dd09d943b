"""Linear layers for inference on CPU with their weights packed once for oneDNN.

``F.linear`` on CPU hands every call to a GEMM that re-lays out the whole weight matrix before
multiplying. Generation calls each layer with few rows (2 to 150 at batch 1) but reads the
whole weight every step, so that re-layout costs as much as the product itself. Here the
weight is converted once into oneDNN's blocked layout (kept on the layer beside the original,
re-made whenever the weight changes) and the product runs on it directly, with the bias and an
optional tanh-GELU fused into the same kernel. Results equal ``F.linear`` to float rounding.

The packed path is taken only where it applies: CPU tensors of float32 or bfloat16 (bfloat16
runs on the AMX / AVX-512 BF16 units where the CPU has them), with autograd off (generation,
evaluation); training and CUDA use ``F.linear`` unchanged. The cost is memory: a packed copy of
each weight for as long as the model lives.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_PACKABLE = (torch.float32, torch.bfloat16)
_HAS_ONEDNN = (
    torch.backends.mkldnn.is_available()
    and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
)


def _weight_key(weight: torch.Tensor) -> tuple:
    try:
        version = weight._version
    except RuntimeError:  # an inference tensor: it cannot change outside inference mode
        version = None
    return (version, weight.data_ptr(), weight.dtype, tuple(weight.shape))


def packed_weight(layer: nn.Linear) -> torch.Tensor:
    """``layer.weight`` in oneDNN's layout (cached on the layer until the weight changes)."""
    key = _weight_key(layer.weight)
    cached = getattr(layer, "_packed_weight", None)
    if cached is None or cached[0] != key:
        cached = (key, torch.ops.mkldnn._reorder_linear_weight(layer.weight.detach(), None))
        object.__setattr__(layer, "_packed_weight", cached)  # not a parameter, buffer or state
    return cached[1]


def uses_packed(x: torch.Tensor, layer: nn.Linear) -> bool:
    return (
        _HAS_ONEDNN
        and x.device.type == "cpu"
        and not torch.is_grad_enabled()
        and x.dtype in _PACKABLE
        and layer.weight.dtype == x.dtype
    )


def linear(x: torch.Tensor, layer: nn.Linear, bias: torch.Tensor | None = None, gelu: bool = False) -> torch.Tensor:
    """``layer(x)`` (with ``bias`` instead of ``layer.bias`` when given), then tanh-GELU if
    ``gelu``: ``[... x in]`` -> ``[... x out]``."""
    bias = layer.bias if bias is None else bias
    if uses_packed(x, layer):
        if bias is not None:
            bias = bias.to(x.dtype)
        return torch.ops.mkldnn._linear_pointwise(
            x, packed_weight(layer), bias, "gelu" if gelu else "none", [], "tanh" if gelu else ""
        )
    y = F.linear(x, layer.weight, bias)
    return F.gelu(y, approximate="tanh") if gelu else y
