"""The two physical limits that bound generation, measured on this machine, and the lower bound
(roofline) they put on one ``generate`` call of each architecture.

- Memory bandwidth: a one-token step multiplies a couple of rows by every weight matrix, so it
  costs about the time to read the weights (and the key/value cache) once. Measured as the
  rate at which a large float32 tensor is summed (bytes are bytes: the same figure bounds
  every dtype; a bfloat16 sum would measure its conversions instead).
- Matrix throughput: a whole-scale step multiplies up to 2 x batch x 75 rows by the weights, so
  its large steps cost their floating-point operations at the GEMM rate. Measured as the rate
  of a linear layer of the model's shape with 1024 rows, through the same code as generation
  (``aar.transformer.fast_linear``).

The bound of a call adds, step by step, the larger of the two times (weights + cache read at the
measured bandwidth, FLOPs at the measured rate); everything else (attention kernels, norms,
sampling, Python, the tokenizer's decoder) is left out, so a measured time over its bound says
how close the implementation runs to the machine.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from aar.bench.bench_common import sync

_BYTES = {"float32": 4, "bfloat16": 2, "int8": 1}


def _rate(fn, device: torch.device, work: float, repeats: int = 5) -> float:
    fn()
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return work / best


@torch.inference_mode()
def measure(device: torch.device, precision: str = "float32", width: int = 1024) -> dict:
    """Read bandwidth (GB/s) and linear-layer throughput (GFLOP/s) of ``precision``
    (``float32``, ``bfloat16`` or ``int8`` weights) on ``device`` (best of a few runs: the
    machine's capability, not its average under load)."""
    from aar.transformer.fast_linear import linear, quantize_int8

    big = torch.ones(64 * 2**20, device=device)  # 256 MiB of float32
    bandwidth = _rate(lambda: big.sum(), device, big.numel() * 4) / 1e9
    del big
    dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
    layer = nn.Linear(width, 4 * width).to(device, dtype)
    if precision == "int8":
        quantize_int8(layer)
    x = torch.randn(1024, width, device=device, dtype=dtype)
    for _ in range(8):  # past the per-shape kernel measurement of fast_linear
        linear(x, layer)
    gemm = _rate(lambda: linear(x, layer), device, 2 * 1024 * width * 4 * width) / 1e9
    return {"read_gb_s": round(bandwidth, 1), "linear_gflop_s": round(gemm, 1)}


def roofline(model, arch: str, batch: int, guided: bool, limits: dict, precision: str | None = None) -> dict:
    """Lower bound (s) of one ``generate`` call of ``model`` (``arch``) for ``batch`` clips, in
    ``precision`` (default: the model's dtype)."""
    cfg = model.config
    dtype_bytes = _BYTES[precision or str(model.dtype).removeprefix("torch.")]
    rows = 2 * batch if guided else batch
    c, depth = cfg.width, cfg.depth
    weights = depth * 12 * c * c + c * cfg.vocab_size  # matrices read at every step (AdaLN is precomputed)
    bw, rate = limits["read_gb_s"] * 1e9, limits["linear_gflop_s"] * 1e9
    sizes = list(cfg.scales) if arch == "next-scale" else [1] * model.seq_len  # tokens per step
    seconds, seen = 0.0, 0
    for size in sizes:
        seen += size
        kv = depth * 2 * rows * seen * c * dtype_bytes  # keys and values read by this step's attention
        flops = 2 * weights * rows * size + depth * 4 * rows * size * seen * c
        seconds += max((weights * dtype_bytes + kv) / bw, flops / rate)
    return {"bound_s": round(seconds, 4), "weight_mib_per_step": round(weights * dtype_bytes / 2**20, 1)}
