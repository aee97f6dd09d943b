"""Tokenizer speed: encode / decode real-time factor of a SAT on this machine.

    python -m aar.bench.bench_tokenizer [--preset paper-d128-lat128] [--device cpu] [-o out.json]

Random weights (speed does not depend on them); codebooks filled with random vectors.
Reports the median wall time over repeats after warm-up, for 1 s and 10 s of audio at batch 1
and 8, and the real-time factor RTF = audio seconds processed per wall-clock second.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time

import torch

from aar.bench.bench_common import write_report

from aar import SAT, SATConfig


def _sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn, device, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def build_random_sat(preset: str, device, dtype: str = "fp32") -> SAT:
    torch.manual_seed(0)
    sat = SAT(SATConfig.preset(preset), inference_dtype=dtype)
    with torch.no_grad():
        for book in sat.quantizer.codebooks:
            book.embed.normal_()
            book.initialized.fill_(1)
    return sat.eval().to(device)


def run(
    preset: str = "paper-d128-lat128",
    device: str = "cpu",
    seconds=(1, 10),
    batches=(1, 8),
    repeats: int = 5,
    dtype: str = "fp32",
) -> dict:
    device = torch.device(device)
    sat = build_random_sat(preset, device, dtype)
    sr = sat.sample_rate
    rows = []
    for secs in seconds:
        for b in batches:
            wav = torch.randn(b, 1, secs * sr, device=device) * 0.1
            codes = sat.encode_long(wav)
            enc = time_call(lambda: sat.encode_long(wav), device, repeats)
            dec = time_call(lambda: sat.decode_long(codes, wav.shape[-1]), device, repeats)
            audio = b * secs
            rows.append(
                dict(
                    seconds=secs,
                    batch=b,
                    encode_s=round(enc, 5),
                    decode_s=round(dec, 5),
                    encode_rtf=round(audio / enc, 2),
                    decode_rtf=round(audio / dec, 2),
                )
            )
            print(
                f"{secs:>3d} s x {b}: encode {enc * 1e3:8.1f} ms (RTF {audio / enc:7.1f})  "
                f"decode {dec * 1e3:8.1f} ms (RTF {audio / dec:7.1f})",
                flush=True,
            )
    return dict(
        benchmark="tokenizer_speed",
        preset=preset,
        params=sum(p.numel() for p in sat.parameters()),
        device=str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        python=platform.python_version(),
        dtype=dtype,
        repeats=repeats,
        results=rows,
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="paper-d128-lat128")
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"], help="encoder/decoder inference dtype")
    p.add_argument("-o", "--out", default="benchmarks/results/tokenizer_speed.json")
    args = p.parse_args(argv)
    result = run(args.preset, args.device, repeats=args.repeats, dtype=args.dtype)
    return write_report(result, args.out)


if __name__ == "__main__":
    sys.exit(main())
