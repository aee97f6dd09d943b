"""Training throughput (sequences per second) of the transformers from a token cache.

    python -m aar.bench.bench_train [--presets d4 d8] [--archs next-scale next-token] [--batch-size 8]
                                     [--steps 3] [--device cpu] [-o out.json]

A token cache of random codes and random 512-d CLAP-space conditions is written once (the
paper's tokenizer configuration with random codebooks); each model then runs the real
training step of ``aar train-aar`` (``AARTask.train_step``: teacher-forced forward, loss,
backward, clipping, AdamW, bf16 autocast on CUDA unless ``--precisions fp32``) on batches read
from the cache by the training loader. One warm-up step, then the median of ``--steps`` timed
steps (batch fetch included), synchronised on CUDA.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from aar.bench.bench_common import environment, median, time_calls, write_report
from aar.bench.bench_generate import model_config, random_sat, size_name
from aar.train.distributed import init_distributed
from aar.train.engine import Schedule, TrainConfig, _to_device
from aar.transformer import AAR_PRESETS, ARCHITECTURES
from aar.transformer.token_cache import TokenCache, TokenCacheLoader, TokenCacheWriter
from aar.transformer.training import AARTask, AARTrainConfig, CacheDataConfig, SampleConfig

COND_DIM = 512


def synthetic_cache(out: Path, tokenizer: str, windows: int) -> Path:
    """A token cache of ``windows`` random clips (codes and CLAP-space conditions)."""
    sat = random_sat(tokenizer)
    g = torch.Generator().manual_seed(0)
    writer = TokenCacheWriter(out, sat, "clap", cond_dim=COND_DIM, shard_size=windows)
    codes = torch.randint(0, sat.config.codebook_size, (windows, sum(sat.scales)), generator=g)
    cond = torch.randn(windows, COND_DIM, generator=g)
    writer.add(codes, cond, [f"random{i}#0" for i in range(windows)])
    writer.close(num_clips=windows, source="random codes", undecodable=[], clap=None)
    return out


def train_row(arch: str, size, cache: TokenCache, batch_size: int, steps: int, device: str, precision: str) -> dict:
    """Time ``steps`` training steps (after one warm-up) of one model; one row of the report."""
    cfg = AARTrainConfig(model=model_config(size), data=CacheDataConfig(batch_size=batch_size, val_fraction=0.0),
                         train=TrainConfig(max_steps=steps + 1, device=device, precision=precision),
                         sample=SampleConfig(clips=0), arch=arch)
    ctx = init_distributed(device, precision)
    try:
        task = AARTask(cfg, cache, np.zeros(0, dtype=np.int64))
        torch.manual_seed(0)
        task.build(ctx, Schedule(total_steps=steps + 1, steps_per_epoch=None, global_batch=batch_size))
        batches = iter(TokenCacheLoader(cache, np.arange(len(cache)), batch_size))
        losses = []

        def step(i: int):
            losses.append(task.train_step([_to_device(next(batches), ctx.device)], i + 1)["loss"])

        times = time_calls(step, ctx.device, steps, warmup=1)
        params = sum(p.numel() for p in task.model.parameters())
    finally:
        ctx.close()
    seconds = median(times)
    return {
        "arch": arch,
        "model": size_name(size),
        "params_m": round(params / 1e6, 2),
        "precision": "bf16 autocast" if ctx.autocast_dtype is not None else "fp32",
        "batch": batch_size,
        "seconds_per_step": round(seconds, 4),
        "sequences_per_s": round(batch_size / seconds, 3),
        "tokens_per_s": round(batch_size * cache.meta["seq_len"] / seconds, 1),
        "loss_first_last": [round(losses[0], 4), round(losses[-1], 4)],
        "times_s": [round(t, 4) for t in times],
    }


def run(presets=("d4", "d8"), archs=("next-scale", "next-token"), batch_size: int = 8, steps: int = 3,
        device: str = "cpu", precisions=("auto",), tokenizer: str = "paper-d128-lat128", progress=print) -> dict:
    """Every (model size, precision, arch) combination on one synthetic token cache."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="aar-bench-cache-") as tmp:
        cache = TokenCache(synthetic_cache(Path(tmp) / "cache", tokenizer, windows=max(4 * batch_size, 16)))
        for size in presets:
            for precision in precisions:
                for arch in archs:
                    rows.append(train_row(arch, size, cache, batch_size, steps, device, precision))
                    progress(json.dumps(rows[-1]))
    return {
        "benchmark": "train: AARTask.train_step on batches from a token cache (random codes and conditions)",
        "tokenizer": tokenizer,
        "steps": steps,
        "environment": environment(torch.device(device if device != "auto" else "cpu"), list(precisions)),
        "results": rows,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", default=["d4", "d8"], choices=sorted(AAR_PRESETS))
    p.add_argument("--archs", nargs="+", choices=sorted(ARCHITECTURES), default=["next-scale", "next-token"])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--precisions", nargs="+", choices=["auto", "bf16", "fp32"], default=["auto"])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("-o", "--out", default="benchmarks/results/bench_train.json")
    args = p.parse_args(argv)
    report = run(args.presets, args.archs, args.batch_size, args.steps, args.device, args.precisions)
    return write_report(report, args.out)


if __name__ == "__main__":
    sys.exit(main())
