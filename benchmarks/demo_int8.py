"""int8 weights on a trained model: the demo's AAR generating in float32 and with int8 weights,
judged by FAD (mel backbone) against the demo's held-out clips.

    python benchmarks/demo_int8.py [--demo demo_out] [--clips 128] [--seeds 0 1] [--threads 2]
                                   [-o benchmarks/results/demo_int8.json]

For each seed and precision, ``--clips`` clips per class with the demo's sampling settings
(guidance 3 at every scale, no truncation), embedded with the weight-free mel backbone. It
reports every generated class against every held-out class, and how far the int8 set of a
class lies from the float32 set of the same seed (FAD), beside how far two float32 sets of
different seeds lie from each other: the spread that sampling alone gives, so that an int8
shift inside it is no measurable cost. Generation time per precision is recorded too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from aar.bench.bench_common import environment
from aar.audio import save_audio
from aar.metrics import EmbeddingStats, embed_clips, load_backbone
from aar.metrics.clips import collect_clips
from aar.transformer import AAR
from aar.transformer.precision import apply_precision, choose_precision

SAMPLING = dict(cfg=3.0, cfg_schedule="constant", top_k=0, top_p=0.0)


def folder_stats(folder: Path, classes: list[str], backbone) -> dict[str, EmbeddingStats]:
    """Embedding statistics of the clips of each ``folder/<class>/``, as the demo computes them."""
    stats = {}
    for name in classes:
        embedded = embed_clips(collect_clips(folder / name, name), backbone, progress=False)
        stats[name] = EmbeddingStats.from_embeddings(embedded.all_embeddings(backbone.embedding_dim), name)
    return stats


@torch.inference_mode()
def generate_folder(model: AAR, classes: list[str], clips: int, seed: int, folder: Path, batch: int = 32) -> float:
    """Write ``clips`` generated clips per class into ``folder/<class>/``; returns the seconds
    spent generating."""
    seconds = 0.0
    for index, name in enumerate(classes):
        for start in range(0, clips, batch):
            n = min(batch, clips - start)
            began = time.perf_counter()
            out = model.generate(torch.tensor([index]), num_samples=n, seed=seed * 100_000 + index * 1000 + start,
                                 **SAMPLING)
            seconds += time.perf_counter() - began
            for k, wav in enumerate(out.audio):
                save_audio(folder / name / f"{start + k:04d}.wav", wav.float(), out.sample_rate)
    return seconds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--demo", type=Path, default=Path("demo_out"))
    p.add_argument("--clips", type=int, default=128)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("-o", "--out", default="benchmarks/results/demo_int8.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = AAR.from_pretrained(args.demo / "aar" / "model").eval()
    classes = list(model.config.class_names)
    backbone = load_backbone("mel")
    held = folder_stats(args.demo / "data" / "heldout", classes, backbone)
    runs, times = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for name in ("float32", "int8"):
                apply_precision(model, choose_precision(name, "cpu"))
                folder = Path(tmp) / f"{name}-{seed}"
                times[(name, seed)] = generate_folder(model, classes, args.clips, seed, folder)
                runs[(name, seed)] = folder_stats(folder, classes, backbone)
                print(f"{name} seed {seed}: {times[(name, seed)]:.1f} s", flush=True)
    rows = []
    for (name, seed), stats in runs.items():
        rows.append({"precision": name, "seed": seed, "generation_s": round(times[(name, seed)], 2),
                     "fad_vs_heldout": {g: {h: round(stats[g].distance(held[h]), 2) for h in classes} for g in classes}})
    s0, s1 = args.seeds[0], args.seeds[-1]
    shift = {c: {"int8_vs_float32_same_seed": [round(runs[("int8", s)][c].distance(runs[("float32", s)][c]), 2)
                                               for s in args.seeds],
                 "float32_seed_vs_seed": round(runs[("float32", s0)][c].distance(runs[("float32", s1)][c]), 2)
                 if s0 != s1 else None}
             for c in classes}
    report = {"benchmark": "demo_int8", "model": str(args.demo / "aar" / "model"), "clips_per_class": args.clips,
              "sampling": SAMPLING, "environment": environment(torch.device("cpu"), ["float32", "int8"]),
              "load_average_after": [round(x, 2) for x in os.getloadavg()], "results": rows, "shift": shift}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(shift, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
