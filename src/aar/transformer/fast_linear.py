"""Linear layers for inference on CPU: the fastest kernel this machine has, per shape.

``F.linear`` on CPU hands every call to a GEMM that re-lays out the whole weight matrix before
multiplying. Generation calls each layer with few rows (2 to 150 at batch 1) but reads the
whole weight every step, so that re-layout can cost as much as the product itself. oneDNN can
keep the weight in its blocked layout (converted once, kept on the layer beside the original,
re-made whenever the weight changes) and multiply on it directly, optionally with the
tanh-GELU fused into the same kernel.

Which of these is fastest depends on the CPU, not only on the shape, so nothing here is tuned
for one machine:

- **Support is asked of PyTorch** (:func:`cpu_support`). The packed path of a dtype is a
  candidate only where oneDNN supports that dtype on this CPU (bfloat16 needs AVX-512
  BW/VL/DQ or AVX-NE-CONVERT; without them oneDNN refuses it, and ATen emulates bfloat16).
  Should oneDNN refuse a dtype anyway, that call and every later one run on ATen, with one
  warning.
- **The default rule** (``auto``), from measurements written down in ``docs/benchmarks.md``
  (``benchmarks/linear_kernels.py`` re-measures it on any machine): the packed product wherever
  it can run (on an AVX2-only CPU it beat ``F.linear`` at every shape of a d16 model from 2 to
  1200 rows, 1.1x to 3.5x); the GELU fused into it on AVX-512 CPUs, where the packed path
  was tuned with it, and elsewhere only for a few rows (:data:`FUSE_GELU_UP_TO_ROWS`); above
  that it runs after the product (on AVX2, oneDNN's fused tanh-GELU
  made the 1200-row MLP product 1.3x slower than the product plus ATen's GELU), by
  :func:`gelu_tanh_`, which computes the same function twice as fast as ATen there.
- **Measured per process** on request (``measure``): the first few calls of each
  (dtype, in, out, GELU, row-count bucket) run the candidate kernels in turn, timed; from then
  on the fastest serves that key (:func:`decisions` lists them). Every timed call is a real
  call whose result is used, so this costs only the few calls that ran a slower kernel; but
  which kernel produced an early result then depends on timing, so it is not the default.
- **Every kernel gives the same result to float rounding**, and under ``auto`` or a pinned
  kernel the same call always runs the same kernel, so results repeat exactly. The policy is
  set by the environment variable ``AAR_LINEAR_KERNEL`` (``auto``, ``measure``, or one kernel:
  ``aten``, ``packed``, ``packed-fused``) or :func:`set_kernel`.

Kernels run only with autograd off (generation, evaluation) on CPU tensors; training and CUDA
use ``F.linear`` unchanged. The cost of the packed path is memory: a packed copy of each
weight for as long as the model lives.
"""

from __future__ import annotations

import functools
import math
import os
import time
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

KERNELS = ("packed", "packed-fused", "aten")
"""The kernels, in order of preference when their measured times tie (within ``TIE``)."""

KERNEL_ENV = "AAR_LINEAR_KERNEL"
TRIALS_PER_KERNEL = 2
"""Timed calls of each candidate before a key's kernel is fixed (the fastest of them counts)."""
TIE = 0.05
"""A later candidate replaces an earlier one only when it is more than this fraction faster."""

_HAS_ONEDNN_OPS = (
    torch.backends.mkldnn.is_available()
    and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
)


@dataclass(frozen=True)
class CpuSupport:
    """What this process's PyTorch says the CPU can do, as far as the linear kernels care."""

    capability: str
    """``torch.backends.cpu.get_cpu_capability()``: ``"AVX2"``, ``"AVX512"``, ``"DEFAULT"``, ..."""
    onednn: bool
    """oneDNN is built in, with the packed-linear operators."""
    onednn_bf16: bool
    """oneDNN runs bfloat16 on this CPU (``torch.ops.mkldnn._is_mkldnn_bf16_supported()``)."""
    onednn_fp16: bool
    """oneDNN runs float16 on this CPU."""
    native_bf16: bool
    """The CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX-BF16); elsewhere a
    bfloat16 product is converted to float32 first and is slower than float32 itself."""
    native_fp16: bool
    """The CPU multiplies float16 in hardware (AVX512-FP16 or AMX-FP16)."""
    int8: bool
    """PyTorch's dynamically quantized int8 linear runs here (an x86 or fbgemm engine)."""

    def packable(self, dtype: torch.dtype) -> bool:
        """Whether the packed oneDNN path can run ``dtype`` on this CPU."""
        if not self.onednn:
            return False
        return {torch.float32: True, torch.bfloat16: self.onednn_bf16, torch.float16: self.onednn_fp16}.get(dtype, False)

    def summary(self) -> str:
        bf16 = "native" if self.native_bf16 else ("oneDNN, emulated" if self.onednn_bf16 else "ATen only, emulated")
        return f"CPU capability {self.capability}; oneDNN {'yes' if self.onednn else 'no'}; bfloat16 {bf16}"


def _probe(name: str) -> bool:
    fn = getattr(torch.ops.mkldnn, name, None)
    try:
        return bool(fn()) if fn is not None else False
    except RuntimeError:
        return False


@functools.lru_cache(maxsize=None)
def cpu_support() -> CpuSupport:
    """This CPU's support for the kernels, asked of PyTorch once per process."""
    caps = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
    native = bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))
    return CpuSupport(
        capability=torch.backends.cpu.get_cpu_capability(),
        onednn=_HAS_ONEDNN_OPS,
        onednn_bf16=_HAS_ONEDNN_OPS and _probe("_is_mkldnn_bf16_supported"),
        onednn_fp16=_HAS_ONEDNN_OPS and _probe("_is_mkldnn_fp16_supported"),
        native_bf16=native,
        native_fp16=bool(caps.get("avx512_fp16") or caps.get("amx_fp16")),
        int8=hasattr(torch.ops.quantized, "linear_dynamic")
        and any(e in torch.backends.quantized.supported_engines for e in ("x86", "fbgemm")),
    )


# ---------------------------------------------------------------------------- kernel choice
_forced: str | None = None
"""The policy set by :func:`set_kernel` (None: the environment's)."""
_decided: dict[tuple, str] = {}
_trials: dict[tuple, list[tuple[str, float]]] = {}
_refused: set[torch.dtype] = set()
"""dtypes whose packing oneDNN refused although the CPU was reported able (never packed again)."""


POLICIES = KERNELS + ("auto", "measure")


def _check_policy(name: str, source: str) -> str:
    if name not in POLICIES:
        raise ValueError(f"{source} must be one of {', '.join(POLICIES)}, got {name!r}")
    return name


def set_kernel(name: str | None) -> None:
    """Serve every CPU inference linear with one kernel (``"aten"``, ``"packed"``,
    ``"packed-fused"``), by the default rule (``"auto"``), or by per-process measurement
    (``"measure"``); None: whatever ``AAR_LINEAR_KERNEL`` says (default ``auto``). Forgets
    every measured decision."""
    global _forced
    _forced = None if name is None else _check_policy(name, "kernel")
    _decided.clear()
    _trials.clear()


def policy() -> str:
    """The kernel policy in force: set by :func:`set_kernel`, else ``AAR_LINEAR_KERNEL``, else ``auto``."""
    if _forced is not None:
        return _forced
    return _check_policy(os.environ.get(KERNEL_ENV, "auto") or "auto", KERNEL_ENV)


FUSE_GELU_UP_TO_ROWS = 8
"""Without AVX-512, the GELU is fused into the product only for this many rows or fewer: there
a separate pass costs more than oneDNN's slower tanh (1.27x at 2 rows on AVX2, even at 8, and
1.3x the other way at 1200 rows)."""


def rule_kernel(dtype: torch.dtype, gelu: bool, rows: int = 1) -> str:
    """The kernel the default rule (``auto``) picks for ``rows`` rows of ``dtype`` on this CPU
    (see the module's docstring for the measurements behind it)."""
    options = candidates(dtype, gelu)
    if "packed" not in options:
        return "aten"
    if gelu and (cpu_support().capability.upper().startswith("AVX512") or rows <= FUSE_GELU_UP_TO_ROWS):
        return "packed-fused"
    return "packed"


def decisions() -> dict[str, str]:
    """Under ``measure``: the kernel measured fastest for each key so far, e.g.
    ``{"float32 1024x4096 gelu rows<=128": "packed"}`` (for benchmark records)."""
    return {_describe(key): kernel for key, kernel in sorted(_decided.items(), key=str)}


def _describe(key: tuple) -> str:
    dtype, n_in, n_out, gelu, bucket = key
    return f"{str(dtype).removeprefix('torch.')} {n_in}x{n_out}{' gelu' if gelu else ''} rows<={2 ** bucket}"


def candidates(dtype: torch.dtype, gelu: bool) -> tuple[str, ...]:
    """The kernels that can run ``dtype`` on this CPU, in order of preference."""
    if dtype in _refused or not cpu_support().packable(dtype):
        return ("aten",)
    return KERNELS if gelu else ("packed", "aten")


def _uses_kernels(x: torch.Tensor, layer: nn.Linear) -> bool:
    return x.device.type == "cpu" and not torch.is_grad_enabled() and layer.weight.dtype == x.dtype


def _plan(x: torch.Tensor, layer: nn.Linear, gelu: bool) -> tuple[str, tuple | None]:
    """(the kernel for this call, the key to record its time under; None when not measuring)."""
    if not _uses_kernels(x, layer):
        return "aten", None
    if x.dtype == torch.float32 and getattr(layer, "_int8_weight", None) is not None:
        return "int8", None
    options = candidates(x.dtype, gelu)
    mode = policy()
    if mode in KERNELS:
        if mode == "packed-fused" and not gelu:
            mode = "packed"
        return (mode if mode in options else "aten"), None
    if mode == "auto" or len(options) == 1:
        return rule_kernel(x.dtype, gelu, _rows(x)), None
    key = _key(x, layer, gelu)
    chosen = _decided.get(key)
    if chosen is not None:
        return chosen, None
    return options[len(_trials.get(key, ())) % len(options)], key


def kernel_for(x: torch.Tensor, layer: nn.Linear, gelu: bool = False) -> str:
    """The kernel the next call ``linear(x, layer, gelu=gelu)`` runs (without running it;
    while a key is being measured, the next candidate to time)."""
    return _plan(x, layer, gelu)[0]


def _rows(x: torch.Tensor) -> int:
    return max(1, x.numel() // max(1, x.shape[-1]))


def _key(x: torch.Tensor, layer: nn.Linear, gelu: bool) -> tuple:
    return (x.dtype, layer.in_features, layer.out_features, gelu, (_rows(x) - 1).bit_length())


def _record(key: tuple, kernel: str, seconds: float, options: tuple[str, ...]) -> None:
    trials = _trials.setdefault(key, [])
    trials.append((kernel, seconds))
    if len(trials) < TRIALS_PER_KERNEL * len(options):
        return
    best = {name: min(t for k, t in trials if k == name) for name in options}
    choice = options[0]
    for name in options[1:]:
        if best[name] < best[choice] * (1.0 - TIE):
            choice = name
    _decided[key] = choice
    del _trials[key]


# ---------------------------------------------------------------------------- the kernels
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


def _refuse(dtype: torch.dtype, exc: RuntimeError) -> None:
    """oneDNN refused to pack ``dtype`` here: serve it with ATen from now on, and say so once."""
    _refused.add(dtype)
    _decided.clear()
    _trials.clear()
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    warnings.warn(f"aar: oneDNN cannot pack {str(dtype).removeprefix('torch.')} weights on this CPU "
                  f"({cpu_support().capability}): {reason}; using ATen's linear instead", RuntimeWarning, stacklevel=3)


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_CHUNK = 1 << 18
"""Elements per block of :func:`gelu_tanh_` (1 MiB of float32: the block stays in L2 cache
through its five passes)."""


_GELU_ATEN_BELOW = 1 << 16
"""Up to this many elements (16 rows of a 4096-wide layer) ATen's single pass is faster: at 2
rows the five dispatches cost 0.26 ms more than the whole product's GELU (measured on AVX2)."""


def gelu_tanh_(y: torch.Tensor) -> torch.Tensor:
    """tanh-GELU in place, ``y * sigmoid(2 sqrt(2/pi) (y + 0.044715 y^3))`` (the same function as
    ``F.gelu(y, approximate="tanh")``, since ``(1 + tanh(u)) / 2 = sigmoid(2u)``), over blocks that
    stay in cache (ATen's own pass for small tensors). ATen's tanh is slow on AVX2 CPUs: this is twice as fast there (10 against 21 ms
    for 1200 x 4096, one thread) and agrees with ATen to float rounding (4.8e-7 at most)."""
    if y.numel() <= _GELU_ATEN_BELOW:  # too few elements to pay for five passes' dispatch
        return torch._C._nn.gelu_(y, approximate="tanh")
    flat = y.view(-1)
    for block in flat.split(_GELU_CHUNK):
        t = block * block
        t.mul_(2.0 * _SQRT_2_OVER_PI * 0.044715).add_(2.0 * _SQRT_2_OVER_PI).mul_(block).sigmoid_()
        block.mul_(t)
    return y


def _run(kernel: str, x: torch.Tensor, layer: nn.Linear, bias: torch.Tensor | None, gelu: bool) -> torch.Tensor:
    if kernel == "int8":
        y = torch.ops.quantized.linear_dynamic(x, int8_weight(layer), True)
        if bias is not None:
            y += bias
        return gelu_tanh_(y) if gelu else y
    if kernel == "aten":
        y = F.linear(x, layer.weight, bias)
        return F.gelu(y, approximate="tanh") if gelu else y
    if bias is not None:
        bias = bias.to(x.dtype)
    fused = gelu and kernel == "packed-fused"
    y = torch.ops.mkldnn._linear_pointwise(
        x, packed_weight(layer), bias, "gelu" if fused else "none", [], "tanh" if fused else ""
    )
    if gelu and not fused:
        y = gelu_tanh_(y)  # in place: no second output buffer
    return y


def linear(x: torch.Tensor, layer: nn.Linear, bias: torch.Tensor | None = None, gelu: bool = False) -> torch.Tensor:
    """``layer(x)`` (with ``bias`` instead of ``layer.bias`` when given), then tanh-GELU if
    ``gelu``: ``[... x in]`` -> ``[... x out]``, on the kernel chosen for this shape."""
    bias = layer.bias if bias is None else bias
    kernel, key = _plan(x, layer, gelu)
    if kernel != "aten":
        try:
            packed_weight(layer)  # (packing a weight the first time is not the kernel's speed)
        except RuntimeError as exc:
            _refuse(x.dtype, exc)
            kernel, key = _plan(x, layer, gelu)
    if key is None:
        return _run(kernel, x, layer, bias, gelu)
    start = time.perf_counter()
    y = _run(kernel, x, layer, bias, gelu)
    _record(key, kernel, time.perf_counter() - start, candidates(x.dtype, gelu))
    return y


# ---------------------------------------------------------------------------- int8 weights
INT8_ENGINES = ("x86", "fbgemm")


def _quantized_engine() -> str:
    engine = torch.backends.quantized.engine
    if engine not in INT8_ENGINES:
        engine = next(e for e in INT8_ENGINES if e in torch.backends.quantized.supported_engines)
        torch.backends.quantized.engine = engine
    return engine


def int8_weight(layer: nn.Linear):
    """``layer.weight`` as PyTorch's prepacked int8 linear weight, per output channel symmetric
    (cached on the layer until the weight changes; the bias is added outside)."""
    key = _weight_key(layer.weight)
    cached = layer._int8_weight
    if cached is None or cached[0] != key:
        weight = layer.weight.detach().float()
        scales = (weight.abs().amax(dim=1).clamp_min(1e-12) / 127.0).double()
        zeros = torch.zeros(weight.shape[0], dtype=torch.long)
        with warnings.catch_warnings():  # PyTorch marks its quantized tensors as deprecated
            warnings.simplefilter("ignore")
            _quantized_engine()
            quantized = torch.quantize_per_channel(weight, scales, zeros, 0, torch.qint8)
            cached = (key, torch.ops.quantized.linear_prepack(quantized, None))
        object.__setattr__(layer, "_int8_weight", cached)
    return cached[1]


def quantize_int8(module: nn.Module, skip: tuple[str, ...] = ()) -> list[str]:
    """Serve every ``nn.Linear`` inside ``module`` (but those whose qualified name starts with one
    of ``skip``) from int8 weights in CPU inference; returns the names of the layers changed.
    The float weights stay (training and other devices use them); :func:`dequantize_int8`
    undoes this. Raises RuntimeError where PyTorch has no int8 linear for this CPU."""
    if not cpu_support().int8:
        raise RuntimeError(f"int8 weights need PyTorch's x86 or fbgemm quantized engine; this build has "
                           f"{', '.join(torch.backends.quantized.supported_engines)}")
    names = []
    for name, layer in module.named_modules():
        if isinstance(layer, nn.Linear) and not any(name.startswith(s) for s in skip if s):
            object.__setattr__(layer, "_int8_weight", None)
            int8_weight(layer)
            names.append(name)
    return names


def dequantize_int8(module: nn.Module) -> None:
    """Undo :func:`quantize_int8`: the layers are served from their float weights again."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear) and hasattr(layer, "_int8_weight"):
            object.__delattr__(layer, "_int8_weight")


def uses_packed(x: torch.Tensor, layer: nn.Linear, gelu: bool = False) -> bool:
    """Whether the next ``linear(x, layer, gelu=gelu)`` runs a packed oneDNN kernel."""
    return kernel_for(x, layer, gelu) != "aten"
