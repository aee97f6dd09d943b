"""Tokenizer training speed: samples per second of ``aar train-tokenizer`` on this machine.

    python benchmarks/train_tokenizer_speed.py [--preset tiny] [--steps 40] [--threads 1 2] [-o out.json]

Trains the preset for ``--steps`` optimisation steps (the full step: generator forward and
backward through the discriminator and the multi-scale mel loss, plus the discriminator update
on 2 of every 3 steps) on generated 24 kHz clips (``--data`` to use a folder of your own), once
per intra-op thread count, and reports samples/s measured by the trainer (the first steps,
which include the k-means codebook initialisation, are excluded by starting the clock after
``--warmup`` steps in a resumed run). On a CPU shared with other work, fewer threads can be
faster: the JSON records the load average next to each figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from aar.train import TokenizerTrainConfig, train_tokenizer


def write_clips(root: Path, n: int = 32, seconds: float = 2.0, sr: int = 24_000) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    for i in range(n):
        wav = sum(0.15 * np.sin(2 * np.pi * rng.uniform(80, 4000) * t + rng.uniform(0, 6)) for _ in range(4))
        sf.write(root / f"clip{i:03d}.wav", (wav + 0.01 * rng.standard_normal(t.size)).astype(np.float32), sr)
    return root


def measure(preset: str, data: Path, steps: int, warmup: int, threads: int, device: str, batch_size: int | None) -> dict:
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as run:
        cfg = TokenizerTrainConfig.load(preset)
        cfg.train.device = device
        cfg.train.val_every = 0
        cfg.train.checkpoint_every = 0
        cfg.train.epochs = None
        if batch_size is not None:
            cfg.data.batch_size = batch_size
        # warm-up session (k-means initialisation, allocator, caches), then the timed session resumes it
        cfg.train.max_steps = warmup
        train_tokenizer(cfg, data, run)
        cfg.train.max_steps = warmup + steps
        load_before = os.getloadavg()[0]
        began = time.perf_counter()
        summary = train_tokenizer(cfg, data, run, resume=True).summary
        wall = time.perf_counter() - began
    return {
        "threads": threads,
        "batch_size": cfg.data.batch_size,
        "steps": steps,
        "samples_per_s": round(summary["samples_per_s"], 3),
        "step_time_s": round(summary["elapsed_s"] / steps, 4),
        "wall_s_with_startup": round(wall, 2),
        "load_average_1min_before": round(load_before, 2),
        "load_average_1min_after": round(os.getloadavg()[0], 2),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="tiny", help="tokenizer training preset or YAML file (default: tiny)")
    parser.add_argument("--data", type=Path, help="audio folder (default: 32 generated 2 s clips)")
    parser.add_argument("--steps", type=int, default=40, help="timed steps (default: 40)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default: 3)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="intra-op thread counts to try")
    parser.add_argument("--batch-size", type=int, help="override the preset's batch size")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("-o", "--out", type=Path, default=Path("benchmarks/results/train_tokenizer_speed.json"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or write_clips(Path(tmp) / "clips")
        runs = []
        for threads in args.threads:
            print(f"{args.preset}: {args.steps} steps with {threads} thread(s) ...", file=sys.stderr, flush=True)
            runs.append(measure(args.preset, data, args.steps, args.warmup, threads, args.device, args.batch_size))
            print(f"  {runs[-1]['samples_per_s']} samples/s", file=sys.stderr)
    best = max(runs, key=lambda r: r["samples_per_s"])
    result = {
        "benchmark": "train_tokenizer_speed",
        "preset": args.preset,
        "device": args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() and args.device != "cpu" else None,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "data": str(args.data) if args.data else "32 generated 2 s clips (sinusoids + noise)",
        "samples_per_s": best["samples_per_s"],
        "best_threads": best["threads"],
        "runs": runs,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
