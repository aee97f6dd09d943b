"""Generation speed and memory of next-scale (AAR) against next-token prediction at equal size.

    python -m aar.bench.bench_generate [--presets d4 d8 d16] [--batches 1 8] [--dtypes float32]
                                       [--device cpu] [--repeats 3] [-o out.json]

Both models share one tokenizer (the paper's SAT d128/lat128 configuration: 16 scales, 455
tokens per 1 s clip) and have the same blocks, width, depth and parameters; weights are random
(speed does not depend on them; codebooks are filled with random vectors). Sampling uses the
release's settings with guidance on: cfg 4 (conditional and null halves batched), top-k 200,
top-p 0.95. One call of ``generate`` makes ``batch`` clips, audio decoding included. The first
call of each configuration is a warm-up whose peak memory is recorded (see bench_common); the
timed figure is the median of ``repeats`` further calls. Each row also carries the call's lower
bound from this machine's measured bandwidth and matrix throughput (see bench_machine).
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from aar import SAT, SATConfig
from aar.bench.bench_common import environment, median, peak_memory, time_calls, write_report
from aar.bench.bench_machine import measure, roofline
from aar.transformer import AAR_PRESETS, ARCHITECTURES, AARConfig
from aar.transformer.precision import apply_precision, choose_precision

DTYPES = ("float32", "bfloat16", "int8")
"""Precisions a row can ask for; each runs as :func:`choose_precision` decides on the device
(bfloat16 falls back to float32 where the device has no bfloat16 units), and the row records
what ran."""
SAMPLING = dict(cfg=4.0, top_k=200, top_p=0.95)
# ``--quick``: a model of CI size over the tiny tokenizer (same schedule: 16 scales, 455 tokens).
QUICK_MODEL = {"depth": 2, "width": 64, "num_heads": 2}


def random_sat(preset: str) -> SAT:
    torch.manual_seed(0)
    sat = SAT(SATConfig.preset(preset))
    with torch.no_grad():
        for book in sat.quantizer.codebooks:
            book.embed.normal_()
            book.initialized.fill_(1)
    return sat.eval()


def model_config(size: str | dict) -> AARConfig:
    return AARConfig.preset(size) if isinstance(size, str) else AARConfig(**size)


def size_name(size: str | dict) -> str:
    return size if isinstance(size, str) else f"depth {size['depth']}, width {size['width']}"


def generation_row(model, arch: str, size: str, dtype: str, batch: int, repeats: int, device: torch.device,
                   limits: dict) -> dict:
    """Time ``model.generate`` on ``batch`` random conditions; one row of the report."""
    cond = torch.randn(batch, model.config.cond_dim, device=device)
    peak, method = peak_memory(lambda: model.generate(cond, seed=0, **SAMPLING), device)  # also the warm-up
    times = time_calls(lambda i: model.generate(cond, seed=1 + i, **SAMPLING), device, repeats, warmup=0)
    seconds = median(times)
    tokens = batch * model.seq_len
    bound = roofline(model, arch, batch, SAMPLING["cfg"] != 0, limits, dtype)
    return {
        "arch": arch,
        "model": size,
        "depth": model.config.depth,
        "width": model.config.width,
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "dtype": dtype,
        "batch": batch,
        "ar_steps": model.num_steps,
        "seconds_per_call": round(seconds, 4),
        "latency_per_clip_s": round(seconds / batch, 4),
        "clips_per_s": round(batch / seconds, 3),
        "tokens_per_s": round(tokens / seconds, 1),
        "roofline_s": bound["bound_s"],
        "roofline_fraction": round(bound["bound_s"] / seconds, 3),
        "weight_mib_per_step": bound["weight_mib_per_step"],
        "peak_memory_mib": round(peak, 1) if peak is not None else None,
        "memory_method": method,
        "times_s": [round(t, 4) for t in times],
    }


def run(presets=("d4", "d8", "d16"), batches=(1, 8), dtypes=("float32",), repeats: int = 3, device: str = "cpu",
        archs=("next-scale", "next-token"), tokenizer: str = "paper-d128-lat128", progress=print) -> dict:
    """Every (model size, dtype, arch, batch) combination; next-scale and next-token of one size
    and dtype are measured back to back. ``presets`` are AAR preset names or AARConfig field dicts."""
    device = torch.device(device)
    sat = random_sat(tokenizer).to(device)
    rows = []
    precisions = {name: choose_precision(name, device) for name in dtypes}
    for precision in precisions.values():
        progress(precision.note)
    dtypes = list(dict.fromkeys(precision.name for precision in precisions.values()))
    limits = {dtype: measure(device, dtype) for dtype in dtypes}
    progress(f"machine limits: {json.dumps(limits)}")
    for size in presets:
        for dtype in dtypes:
            for arch in archs:
                torch.manual_seed(0)
                model = ARCHITECTURES[arch](model_config(size), sat).eval().to(device)
                model = apply_precision(model, choose_precision(dtype, device))
                for batch in batches:
                    rows.append(generation_row(model, arch, size_name(size), dtype, batch, repeats, device, limits[dtype]))
                    progress(json.dumps(rows[-1]))
                del model
    return {
        "benchmark": "generate: next-scale vs next-token, cfg 4, top-k 200, top-p 0.95, 1 s clips, random weights",
        "tokenizer": tokenizer,
        "sampling": SAMPLING,
        "repeats": repeats,
        "environment": environment(device, dtypes),
        "precision_notes": {name: precision.note for name, precision in precisions.items()},
        "machine_limits": limits,
        "results": rows,
        "ratios": latency_ratios(rows),
    }


def latency_ratios(rows: list[dict]) -> list[dict]:
    """Next-token / next-scale time per call for every (model, dtype, batch) measured both ways."""
    by_key = {(r["model"], r["dtype"], r["batch"], r["arch"]): r for r in rows}
    out = []
    for (size, dtype, batch, arch), row in by_key.items():
        other = by_key.get((size, dtype, batch, "next-token"))
        if arch == "next-scale" and other is not None:
            out.append({"model": size, "dtype": dtype, "batch": batch,
                        "next_token_over_next_scale": round(other["seconds_per_call"] / row["seconds_per_call"], 2)})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", default=["d4", "d8", "d16"], choices=sorted(AAR_PRESETS))
    p.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    p.add_argument("--dtypes", nargs="+", choices=DTYPES, default=["float32"])
    p.add_argument("--archs", nargs="+", choices=sorted(ARCHITECTURES), default=["next-scale", "next-token"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, help="intra-op threads (default: torch's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("-o", "--out", default="benchmarks/results/bench_generate.json")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    report = run(args.presets, args.batches, args.dtypes, args.repeats, args.device, args.archs)
    return write_report(report, args.out)


if __name__ == "__main__":
    sys.exit(main())
