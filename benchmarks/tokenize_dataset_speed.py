"""Tokenizing speed: one-second windows per second of ``aar tokenize-dataset`` on this machine,
and the wall time it projects for AudioSet.

    python benchmarks/tokenize_dataset_speed.py [--preset paper-d128-lat128] [--clips 12]
        [--threads 1 2] [--device cpu] [-o benchmarks/results/tokenize_dataset_speed.json]

Writes ``--clips`` generated 10 s clips (AudioSet's length) at 44.1 kHz as MP3 when this
libsndfile writes MP3 (FLAC otherwise), then runs the tokenizing driver
(:func:`aar.train.tokenize.build_token_cache`, condition ``none``: no CLAP model is needed) with
a SAT of the preset (random weights and codebooks: the speed is that of the trained model),
once per intra-op thread count. Reported: windows/s of the whole driver (decode, resample,
encode, write), and the decode + resample rate alone (clips/s on one thread), which bounds how
many CPU cores a GPU process needs. The JSON records the CPU capability, the threads and the
load average before and after each run (on a shared machine the figures move with the load).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from aar.bench.bench_common import environment
from aar.data import FailureLog, iter_clips, open_source
from aar.tokenizer import SAT, SATConfig
from aar.train.tokenize import build_token_cache

AUDIOSET_CLIPS = 2_000_000  # about 2 M ten-second clips (unbalanced + balanced train)
AUDIOSET_WINDOWS = AUDIOSET_CLIPS * 10


def write_clips(root: Path, n: int, seconds: float = 10.0, sr: int = 44_100) -> tuple[Path, str]:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    fmt = "mp3"
    for i in range(n):
        wav = sum(0.1 * np.sin(2 * np.pi * rng.uniform(80, 6000) * t + rng.uniform(0, 6)) for _ in range(5))
        wav = (wav + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
        try:
            if fmt == "mp3":
                sf.write(root / f"Y{i:05d}.mp3", wav, sr, format="MP3")
                continue
        except (sf.LibsndfileError, TypeError, ValueError):
            fmt = "flac"
        sf.write(root / f"Y{i:05d}.flac", wav, sr)
    return root, fmt


def random_sat(preset: str, device: str) -> SAT:
    torch.manual_seed(0)
    sat = SAT(SATConfig.preset(preset)).eval()
    with torch.no_grad():
        for book in sat.quantizer.codebooks:
            book.embed.normal_()
            book.initialized.fill_(1)
    return sat.to(device)


def measure(sat: SAT, data: Path, threads: int, batch_size: int, decode_threads: int) -> dict:
    torch.set_num_threads(threads)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as out:
        began = time.perf_counter()
        meta = build_token_cache(sat, open_source(data), Path(out) / "cache", batch_size=batch_size, shard_clips=4,
                                 decode_threads=decode_threads)
        wall = time.perf_counter() - began
    return {
        "threads": threads,
        "decode_threads": decode_threads,
        "batch_size": batch_size,
        "windows": meta["num_windows"],
        "wall_s": round(wall, 2),
        "windows_per_s": round(meta["num_windows"] / wall, 3),
        "load_average_1min_before": round(load_before, 2),
        "load_average_1min_after": round(os.getloadavg()[0], 2),
    }


def decode_rate(data: Path, sample_rate: int) -> dict:
    torch.set_num_threads(1)
    began = time.perf_counter()
    failures = FailureLog()
    seconds = sum(w.shape[-1] / sample_rate for _, w in iter_clips(open_source(data), sample_rate, failures))
    wall = time.perf_counter() - began
    count = len(open_source(data))
    return {"clips": count, "audio_s": round(seconds, 1), "wall_s": round(wall, 2),
            "clips_per_s_one_core": round(count / wall, 2)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="paper-d128-lat128", help="SAT preset (default: the released AAR's tokenizer)")
    parser.add_argument("--clips", type=int, default=12, help="generated 10 s clips (default 12: 120 windows)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="intra-op thread counts to try")
    parser.add_argument("--batch-size", type=int, default=16, help="windows encoded per batch (default 16)")
    parser.add_argument("--decode-threads", type=int, default=2, help="files decoded ahead of the encoder (default 2)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("-o", "--out", type=Path, default=Path("benchmarks/results/tokenize_dataset_speed.json"))
    args = parser.parse_args(argv)
    sat = random_sat(args.preset, args.device)
    with tempfile.TemporaryDirectory() as tmp:
        data, fmt = write_clips(Path(tmp) / "clips", args.clips)
        print(f"decoding {args.clips} {fmt} clips ...", file=sys.stderr, flush=True)
        decoding = decode_rate(data, sat.sample_rate)
        runs = []
        for threads in args.threads:
            print(f"{args.preset}: tokenizing with {threads} thread(s) ...", file=sys.stderr, flush=True)
            runs.append(measure(sat, data, threads, args.batch_size, args.decode_threads))
            print(f"  {runs[-1]['windows_per_s']} windows/s", file=sys.stderr)
    best = max(runs, key=lambda r: r["windows_per_s"])
    machine = environment(torch.device(args.device), "float32")
    machine["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "tokenize_dataset_speed",
        "preset": args.preset,
        "machine": machine,
        "data": f"{args.clips} generated 10 s clips, 44.1 kHz {fmt}",
        "decode_resample": decoding,
        "windows_per_s": best["windows_per_s"],
        "best_threads": best["threads"],
        "runs": runs,
        "audioset_projection": {
            "windows": AUDIOSET_WINDOWS,
            "hours_one_process": round(AUDIOSET_WINDOWS / best["windows_per_s"] / 3600, 1),
            "note": "tokenizer only (condition none); CLAP embedding not included",
        },
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }, indent=2) + "\n")
    print(args.out.read_text())
    return 0

if __name__ == "__main__":
    sys.exit(main())
