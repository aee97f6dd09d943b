"""Every CPU linear kernel of ``aar.transformer.fast_linear`` on the shapes of a d16 model, on the
machine at hand: which is fastest for each shape and row count, and what the default rule
(``auto``) loses against that.

    python benchmarks/linear_kernels.py [--threads 2] [--width 1024] [--rows 2 8 32 150 300 1200]
                                        [--repeats 7] [-o benchmarks/results/linear_kernels-<cap>-<n>threads.json]

Rows are what generation multiplies per step: 2 x batch x tokens of the scale with guidance
(2 to 150 at batch 1, up to 1200 at batch 8). Kernels: ``aten`` (``F.linear``, then ATen's
GELU), ``packed`` (oneDNN's pre-packed weight, then ``fast_linear.gelu_tanh_`` in place), ``packed-fused``
(the GELU fused into oneDNN's product; MLP input layer only) and ``int8`` (int8 weights,
float32 activations; not a float kernel, listed for its speed). Calls of the kernels alternate
and the best of ``repeats`` counts (the machine's capability, not its average under load);
the JSON records the CPU's capability, threads and the load average around the run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn

from aar.bench.bench_common import environment
from aar.transformer import fast_linear


def shapes(width: int, vocab: int) -> list[tuple[str, int, int, bool]]:
    """(name, in, out, GELU) of the per-token products of one block and the head."""
    return [("attn.qkv", width, 3 * width, False), ("attn.proj", width, width, False),
            ("mlp.fc1", width, 4 * width, True), ("mlp.fc2", 4 * width, width, False), ("head.out", width, vocab, False)]


def best_times(fns: dict, repeats: int) -> dict[str, float]:
    for fn in fns.values():
        fn()
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


@torch.inference_mode()
def measure_shape(name: str, n_in: int, n_out: int, gelu: bool, rows: int, repeats: int) -> dict:
    torch.manual_seed(0)
    layer = nn.Linear(n_in, n_out)
    x = torch.randn(rows, n_in)
    kernels = list(fast_linear.candidates(torch.float32, gelu))
    fns = {k: (lambda k=k: fast_linear._run(k, x, layer, layer.bias, gelu)) for k in kernels}
    quantized = nn.Linear(n_in, n_out)
    quantized.load_state_dict(layer.state_dict())
    if fast_linear.cpu_support().int8:
        fast_linear.quantize_int8(quantized)
        fns["int8"] = lambda: fast_linear._run("int8", x, quantized, quantized.bias, gelu)
    best = best_times(fns, repeats)
    flops = 2 * rows * n_in * n_out
    fastest = min(kernels, key=best.get)
    rule = fast_linear.rule_kernel(torch.float32, gelu, rows)
    return {
        "layer": name, "in": n_in, "out": n_out, "gelu": gelu, "rows": rows,
        "ms": {k: round(t * 1e3, 3) for k, t in best.items()},
        "gflop_s": {k: round(flops / t / 1e9, 1) for k, t in best.items()},
        "fastest_float": fastest, "rule": rule,
        "rule_over_fastest": round(best[rule] / best[fastest], 3),
        "int8_speedup_over_rule": round(best[rule] / best["int8"], 2) if "int8" in best else None,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--width", type=int, default=1024, help="model width (d16: 1024)")
    p.add_argument("--vocab", type=int, default=1024, help="codebook size (the paper's: 1024)")
    p.add_argument("--rows", nargs="+", type=int, default=[2, 8, 32, 150, 300, 1200])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("-o", "--out", help="JSON path (default benchmarks/results/linear_kernels-<capability>-<n>threads.json)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    support = fast_linear.cpu_support()
    print(support.summary(), flush=True)
    load_before = os.getloadavg()
    rows = []
    for n in args.rows:
        for shape in shapes(args.width, args.vocab):
            rows.append(measure_shape(*shape, n, args.repeats))
            r = rows[-1]
            print(f"{r['layer']:9s} rows {n:5d}: " + "  ".join(f"{k} {v:7.2f} ms" for k, v in r["ms"].items())
                  + f"  | fastest {r['fastest_float']}, rule {r['rule']} x{r['rule_over_fastest']}", flush=True)
    losses = [r["rule_over_fastest"] for r in rows]
    report = {
        "benchmark": "linear_kernels",
        "environment": environment(torch.device("cpu"), "float32"),
        "cpu_support": support.summary(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "repeats": args.repeats,
        "rule_over_fastest_max": max(losses),
        "rule_over_fastest_geomean": round(float(torch.tensor(losses).log().mean().exp()), 3),
        "results": rows,
    }
    out = Path(args.out or f"benchmarks/results/linear_kernels-{support.capability.lower()}-{args.threads}threads.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"rule within x{report['rule_over_fastest_max']} of the fastest float kernel everywhere "
          f"(geometric mean x{report['rule_over_fastest_geomean']}); wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
