"""Peak memory of train-aar's token-cache loader on a synthetic cache far larger than that memory.

    python benchmarks/token_stream_memory.py [--gigabytes 1 4] [--batch-size 64] [--block-shards 8]
        [--loader stream random] [-o benchmarks/results/token_stream_memory.json]

For each size, writes a synthetic token cache of about that many GB (the paper's 455 tokens
per window as int16 and a 512-float16 CLAP embedding: 1934 bytes a window, shards of 10,240
windows, every clip 10 windows as AudioSet's) with the cache's own shard writer, then in a fresh
process opens it, computes the validation split and reads one full epoch of batches as
``aar train-aar`` does, and records the process's peak resident memory (``VmHWM``: anonymous
memory plus the pages of mapped files it touched), next to the same after the imports alone.
``random`` is the random-access loader (``TokenCacheLoader`` over ``split_cache``), kept for
small caches, for comparison. The cache is deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SEQ_LEN, COND_DIM, SHARD_WINDOWS, CLIP_WINDOWS = 455, 512, 10_240, 10
BYTES_PER_WINDOW = SEQ_LEN * 2 + COND_DIM * 2


def write_cache(out: Path, gigabytes: float) -> dict:
    from aar.data.token_cache import write_index, write_shard

    rng = np.random.default_rng(0)
    shards = max(1, round(gigabytes * 1e9 / (BYTES_PER_WINDOW * SHARD_WINDOWS)))
    codes = rng.integers(0, 1024, size=(SHARD_WINDOWS, SEQ_LEN), dtype=np.int16)
    cond = rng.standard_normal((SHARD_WINDOWS, COND_DIM)).astype(np.float16)
    index = []
    for k in range(shards):
        names = [f"Y{k:05d}_{c:04d}.mp3#{w}" for c in range(SHARD_WINDOWS // CLIP_WINDOWS) for w in range(CLIP_WINDOWS)]
        codes[:, 0] = k  # shards differ
        index.append(write_shard(out, k, codes, cond, names, {"clips": len(names) // CLIP_WINDOWS, "undecodable": {}}))
    write_index(out, {"scales": [SEQ_LEN], "seq_len": SEQ_LEN, "codebook_size": 1024, "condition": "clap",
                      "cond_dim": COND_DIM, "class_names": [], "num_windows": shards * SHARD_WINDOWS,
                      "shards": [{"name": r["name"], "windows": r["windows"]} for r in index]})
    size = sum(p.stat().st_size for p in out.iterdir())
    return {"shards": shards, "windows": shards * SHARD_WINDOWS, "bytes_on_disk": size}


def status(field: str) -> int:
    """A /proc/self/status figure in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def read_epoch(cache_dir: str, loader_kind: str, batch_size: int, block_shards: int) -> dict:
    """Run in a fresh process: open the cache, split it, read one epoch; report memory."""
    import torch  # noqa: F401  (the training process has torch loaded)

    from aar.data.token_cache import StreamingTokenLoader, TokenCache, TokenCacheLoader, held_out_windows, split_cache

    after_imports = status("VmRSS")
    began = time.perf_counter()
    cache = TokenCache(cache_dir)
    if loader_kind == "stream":
        val = held_out_windows(cache, 0.01, 256, 0)
        loader = StreamingTokenLoader(cache, batch_size, seed=0, exclude=val, block_shards=block_shards)
    else:
        train, val = split_cache(cache, 0.01, 256, 0)
        loader = TokenCacheLoader(cache, train, batch_size, seed=0)
    setup_s = time.perf_counter() - began
    batches, checksum = loader.batches_per_epoch(), 0
    stream = iter(loader)
    for _ in range(batches):
        checksum += int(next(stream)["codes"][0, 0])
    return {
        "loader": loader_kind,
        "batches": batches,
        "batch_size": batch_size,
        "block_shards": block_shards if loader_kind == "stream" else None,
        "held_out_windows": int(len(val)),
        "setup_s": round(setup_s, 2),
        "epoch_s": round(time.perf_counter() - began - setup_s, 2),
        "rss_after_imports_mb": round(after_imports / 2**20, 1),
        "peak_rss_mb": round(status("VmHWM") / 2**20, 1),
        "checksum": checksum,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gigabytes", type=float, nargs="+", default=[1.0, 4.0], help="cache sizes (default 1 4)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--block-shards", type=int, default=8)
    parser.add_argument("--loader", nargs="+", default=["stream", "random"], choices=["stream", "random"])
    parser.add_argument("--dir", type=Path, help="where to write the synthetic caches (default: a temporary folder)")
    parser.add_argument("-o", "--out", type=Path, default=Path("benchmarks/results/token_stream_memory.json"))
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(read_epoch(args.child[0], args.child[1], int(args.child[2]), int(args.child[3]))))
        return 0
    import torch

    from aar.bench.bench_common import environment

    rows = []
    for gb in args.gigabytes:
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            cache = Path(tmp) / "cache"
            print(f"writing a {gb:g} GB synthetic cache ...", file=sys.stderr, flush=True)
            made = write_cache(cache, gb)
            for kind in args.loader:
                print(f"  one epoch with the {kind} loader ...", file=sys.stderr, flush=True)
                cmd = [sys.executable, __file__, "--child", str(cache), kind, str(args.batch_size), str(args.block_shards)]
                proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
                if proc.returncode != 0:
                    raise SystemExit(proc.stderr[-3000:])
                row = {"cache_gb": round(made["bytes_on_disk"] / 1e9, 2), **made, **json.loads(proc.stdout)}
                row["cache_over_peak_rss"] = round(made["bytes_on_disk"] / (row["peak_rss_mb"] * 2**20), 1)
                row["load_average_1min"] = round(os.getloadavg()[0], 2)
                rows.append(row)
                print(f"  peak RSS {row['peak_rss_mb']} MB for {row['cache_gb']} GB", file=sys.stderr)
    machine = environment(torch.device("cpu"), "int16 codes, float16 conditions")
    machine["memory_gb"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1)
    machine["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"benchmark": "token_stream_memory", "machine": machine, "runs": rows,
                                    "date": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=2) + "\n")
    print(args.out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
