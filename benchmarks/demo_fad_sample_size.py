"""How many generated clips per class the demo's FAD matrix needs, and which guidance: the
measurements behind ``DemoSettings.generated_per_class`` and ``DemoSettings.cfg`` (docs/demo.md,
"Environment").

For every finished demo run given and every guidance strength in ``--cfg``, the run's trained
AAR generates ``--per-class`` clips of every class (guidance at every scale, no truncation, as
the demo samples). The FAD (mel backbone) of all of them against the run's held-out clips of
every class is that setting's verdict; then ``--draws`` random subsets of each size in
``--sizes`` are drawn from them (without replacement) and the share of draws in which each
class comes out nearest its own held-out class is counted. A set size whose shares stay near 1
for a model that is on the diagonal with all its clips measures the model rather than the draw.

    python benchmarks/demo_fad_sample_size.py --runs demo_run12 demo_run13 --cfg 2 3 \\
        --out runs/fad-size --json benchmarks/results/demo_fad_sample_size.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", required=True, type=Path, nargs="+", help="finished demo runs (aar/model, audio/original)")
    p.add_argument("--out", required=True, type=Path, help="folder for the generated clips (OUT/<run name>/<class>/)")
    p.add_argument("--json", type=Path, default=None, help="where to write the results (default OUT/result.json)")
    p.add_argument("--per-class", type=int, default=128, help="clips generated per class (default 128)")
    p.add_argument("--cfg", type=float, nargs="+", default=None, help="guidance strengths (default: the demo's)")
    p.add_argument("--sizes", type=int, nargs="+", default=[24, 48, 96], help="subset sizes (default 24 48 96)")
    p.add_argument("--draws", type=int, default=50, help="random subsets per size (default 50)")
    p.add_argument("--seed", type=int, default=1, help="generation seed (default 1; the demo uses 0)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    args = p.parse_args(argv)
    if any(n < 2 or n >= args.per_class for n in args.sizes):
        p.error(f"--sizes must lie between 2 and --per-class ({args.per_class}) less one, got {args.sizes}")
    for run in args.runs:
        if not (run / "aar" / "model").is_dir() or not (run / "audio" / "original").is_dir():
            p.error(f"{run}: not a finished demo run (needs aar/model and audio/original)")

    from aar.demo.evaluation import (
        BACKBONE,
        class_stats,
        embed_clips,
        generate_per_class,
    )
    from aar.demo.settings import DemoSettings
    from aar.metrics import EmbeddingStats, load_backbone
    from aar.metrics.clips import collect_clips
    from aar.transformer import AAR

    torch.set_num_threads(args.threads)
    backbone = load_backbone(BACKBONE)
    demo = DemoSettings(out=args.out, corpus=args.out)  # only for the demo's sampling defaults

    def embeddings(folder: Path, name: str) -> np.ndarray:
        clips = collect_clips(folder / name, name)
        return np.asarray(embed_clips(clips, backbone, progress=False).all_embeddings(backbone.embedding_dim))

    results = {"backbone": BACKBONE, "per_class": args.per_class, "draws": args.draws, "seed": args.seed,
               "sampling": {"cfg_schedule": demo.cfg_schedule, "top_k": demo.top_k, "top_p": demo.top_p,
                            "batch": demo.generation_batch},
               "results": []}
    for run in args.runs:  # the model and the held-out statistics once per run, for every guidance
        model = AAR.from_pretrained(run / "aar" / "model")
        classes = list(model.config.class_names)
        heldout = class_stats(run / "audio" / "original", classes, backbone)

        def verdict(rows: dict[str, np.ndarray], heldout=heldout, classes=classes) -> dict[str, list[float]]:
            return {c: [EmbeddingStats.from_embeddings(e, c).distance(heldout[k]) for k in classes]
                    for c, e in rows.items()}

        for cfg in args.cfg or [demo.cfg]:
            out = args.out / f"{run.name}-cfg{cfg:g}"
            began = time.perf_counter()
            generate_per_class(model, classes, args.per_class, out, cfg, demo.top_k, demo.top_p, args.seed,
                               batch_size=demo.generation_batch, cfg_schedule=demo.cfg_schedule)
            seconds = time.perf_counter() - began
            generated = {c: embeddings(out, c) for c in classes}
            full = verdict(generated)
            rng = np.random.default_rng(0)  # the same draws for a run whatever else is measured
            shares = {}
            for size in args.sizes:
                hits = dict.fromkeys(classes, 0)
                for _ in range(args.draws):
                    drawn = {c: e[rng.choice(len(e), size, replace=False)] for c, e in generated.items()}
                    for i, (c, row) in enumerate(verdict(drawn).items()):
                        hits[c] += int(np.argmin(row) == i)
                shares[str(size)] = {c: hits[c] / args.draws for c in classes}
                print(f"{run.name}, guidance {cfg:g}: {size:4d} clips per class, share of draws on the diagonal "
                      + ", ".join(f"{c} {v:.2f}" for c, v in shares[str(size)].items()), flush=True)
            print(f"{run.name}, guidance {cfg:g}, all {args.per_class} clips: "
                  + "; ".join(f"{c} " + " / ".join(f"{v:.1f}" for v in row) for c, row in full.items()), flush=True)
            results["results"].append({
                "run": run.name, "cfg": cfg, "classes": classes, "generation_seconds": round(seconds, 1),
                "fad_all_clips": {c: [round(v, 2) for v in row] for c, row in full.items()},
                "nearest_all_clips": {c: classes[int(np.argmin(row))] for c, row in full.items()},
                "share_on_diagonal": shares,
            })
    path = args.json or args.out / "result.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
