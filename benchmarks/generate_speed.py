"""Generation speed of the AAR: latency per clip and clips per second.

    python benchmarks/generate_speed.py [--presets d4 d8 d16] [--batches 1 8] [--dtypes float32 bfloat16]
                                        [--threads 2] [-o out.json]

Random weights (speed does not depend on them) over the paper's tokenizer configuration
(SAT d128/lat128, 16 scales, 455 tokens); the release's sampling settings: guidance 4,
top-k 200, top-p 0.95, float32 (bfloat16 rows, when asked for, run the transformer in bfloat16;
the tokenizer stays in float32). One call of ``AAR.generate`` makes ``batch`` clips of 1 s,
audio decoding included. Reports the median wall time over repeats after one warm-up call,
the load average around the run (the CPU may be shared), and, for reference, the time the
authors' ``autoregressive_infer_cfg`` took per call on the project's 2-core machines (2 threads,
same settings): a speed-up against that reference means something only when measured on such
a machine, unloaded. ``benchmarks/compare_release_generate.py`` times the release itself beside
ours in one process, which holds on any machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch

from aar.bench.bench_common import write_report

from aar import SAT, SATConfig
from aar.transformer.fast_linear import cpu_support
from aar.transformer.precision import apply_precision, choose_precision
from aar.transformer import AAR, AARConfig

# Seconds per call of the release's autoregressive_infer_cfg (cfg 4, top-k 200, top-p 0.95,
# fp32, 2 threads) on the project's 2-core machines, keyed by (depth, batch).
RELEASE_SECONDS = {(8, 1): 0.83, (12, 1): 2.54, (16, 1): 5.41, (8, 8): 3.55, (12, 8): 10.4, (16, 8): 22.7}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_model(preset: str, device: torch.device) -> AAR:
    torch.manual_seed(0)
    sat = SAT(SATConfig.preset("paper-d128-lat128"))
    with torch.no_grad():
        for book in sat.quantizer.codebooks:
            book.embed.normal_()
    return AAR(AARConfig.preset(preset), sat).eval().to(device)


def time_generate(model: AAR, batch: int, repeats: int, device: torch.device) -> list[float]:
    cond = torch.randn(batch, model.config.cond_dim, device=device)
    model.generate(cond, cfg=4.0, top_k=200, top_p=0.95, seed=0)  # warm-up
    times = []
    for i in range(repeats):
        _sync(device)
        start = time.perf_counter()
        model.generate(cond, cfg=4.0, top_k=200, top_p=0.95, seed=i)
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


DTYPES = ("float32", "bfloat16", "int8")


def run(presets, batches, dtypes, repeats: int, device: str) -> dict:
    device = torch.device(device)
    load_before = os.getloadavg()
    rows = []
    for preset in presets:
        model = build_model(preset, device)
        depth = model.config.depth
        for asked, batch in [(d, b) for d in dtypes for b in batches]:
            precision = choose_precision(asked, device)  # bfloat16 runs as float32 where it would be emulated
            print(precision.note, flush=True)
            apply_precision(model, precision)
            dtype = precision.name
            times = time_generate(model, batch, repeats, device)
            seconds = statistics.median(times)
            reference = RELEASE_SECONDS.get((depth, batch)) if dtype == "float32" and device.type == "cpu" else None
            rows.append(
                {
                    "preset": preset,
                    "depth": depth,
                    "width": model.config.width,
                    "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
                    "dtype": dtype,
                    "dtype_requested": asked,
                    "batch": batch,
                    "seconds_per_call": round(seconds, 4),
                    "latency_per_clip_s": round(seconds / batch, 4),
                    "clips_per_s": round(batch / seconds, 3),
                    "all_times_s": [round(t, 4) for t in times],
                    "release_reference_s": reference,
                    "speedup_vs_release_reference": round(reference / seconds, 2) if reference else None,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
        del model
    return {
        "benchmark": "AAR.generate, cfg 4, top-k 200, top-p 0.95, 1 s clips, random weights",
        "device": str(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "cpu_capability": cpu_support().capability if device.type == "cpu" else None,
        "repeats": repeats,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "results": rows,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["d4", "d8", "d16"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--dtypes", nargs="+", choices=DTYPES, default=["float32"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("-o", "--out", default="benchmarks/results/generate_speed.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    report = run(args.presets, args.batches, args.dtypes, args.repeats, args.device)
    return write_report(report, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
