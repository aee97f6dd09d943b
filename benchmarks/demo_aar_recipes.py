"""How recognisable the demo AAR's generated clips are, for one way of building its token cache
and several sampling settings: the measurement behind the demo's token views and constant
guidance (docs/demo.md, "Environment").

It takes a finished demo run (its trained tokenizer, ``data/train`` and ``data/heldout``),
encodes the training clips into a token cache with ``--views`` views per clip, trains the
demo's AAR (``aar.demo.settings.demo_aar_config``) for exactly ``--steps`` steps, generates
``--per-class`` clips of every class for every sampling setting and seed, and writes, per
setting, the class x class FAD matrix (mel backbone) of generated clips (rows) against
held-out clips (columns) to ``OUT/result.json``.

    python benchmarks/demo_aar_recipes.py --run demo_out --out runs/aar-views8 --views 8 \\
        --steps 1000 --sampling linear:4 constant:2:0:0 --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch


def sampling_setting(text: str) -> tuple[str, float, int, float]:
    """``schedule:cfg[:top_k:top_p]`` -> (schedule, cfg, top_k, top_p); top-k 200 and top-p 0.95
    when not given."""
    parts = text.split(":")
    try:
        if len(parts) == 2:
            return parts[0], float(parts[1]), 200, 0.95
        if len(parts) == 4:
            return parts[0], float(parts[1]), int(parts[2]), float(parts[3])
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"expected SCHEDULE:CFG[:TOP_K:TOP_P] such as constant:2:0:0, got {text!r}")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, type=Path, help="a finished demo run (tokenizer/model, data/)")
    p.add_argument("--out", required=True, type=Path, help="folder for the cache, the AAR run and result.json")
    p.add_argument("--views", type=int, default=1, help="views per training clip in the token cache (default 1)")
    p.add_argument("--steps", type=int, default=1000, help="AAR training steps (default 1000)")
    p.add_argument("--batch", type=int, default=None, help="AAR batch size (default: the demo's)")
    p.add_argument("--lr", type=float, default=None, help="AAR peak learning rate (default: the demo's)")
    p.add_argument("--sampling", type=sampling_setting, nargs="+", default=[("linear", 4.0, 200, 0.95)],
                   help="SCHEDULE:CFG[:TOP_K:TOP_P] settings to generate with (default linear:4, with top-k 200 "
                        "and top-p 0.95; 0 turns a filter off)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="generation seeds (default 0 1)")
    p.add_argument("--per-class", type=int, default=48, help="clips generated per class and seed (default 48)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    args = p.parse_args(argv)

    from aar.data import open_source
    from aar.demo.evaluation import BACKBONE, class_stats, fad_matrix, generate_per_class
    from aar.demo.settings import demo_aar_config
    from aar.demo.training import aar_runner, train_within
    from aar.metrics import load_backbone
    from aar.tokenizer import SAT
    from aar.transformer import AAR
    from aar.transformer.token_cache import build_token_cache

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    cache = args.out / "tokens"
    if not (cache / "cache.json").is_file():
        sat = SAT.from_pretrained(args.run / "tokenizer" / "model")
        build_token_cache(sat, open_source(args.run / "data" / "train"), cache, condition="label", views=args.views)
    began = time.perf_counter()
    config = demo_aar_config("cpu")
    if args.batch is not None:
        config.data.batch_size = args.batch
    if args.lr is not None:
        config.optim.lr = args.lr
    summary, _ = train_within(aar_runner(config, cache, args.out / "aar"), args.out / "aar",
                              None, 10, 5, args.steps)
    train_s = time.perf_counter() - began

    model = AAR.from_pretrained(args.out / "aar" / "model")
    classes = list(model.config.class_names)
    backbone = load_backbone(BACKBONE)
    heldout = class_stats(args.run / "data" / "heldout", classes, backbone)
    rows = []
    for schedule, cfg, top_k, top_p in args.sampling:
        for seed in args.seeds:
            folder = args.out / "generated" / f"{schedule}-{cfg:g}-k{top_k}-p{top_p:g}-seed{seed}"
            info = generate_per_class(model, classes, args.per_class, folder, cfg, top_k, top_p, seed,
                                      cfg_schedule=schedule)
            matrix = fad_matrix(class_stats(folder, classes, backbone), heldout)
            rows.append({"cfg_schedule": schedule, "cfg": cfg, "top_k": top_k, "top_p": top_p, "seed": seed,
                         "clips_per_class": info["clips_per_class"],
                         "fad_generated_vs_heldout": matrix,
                         "diagonal": sum(matrix["nearest"][c] == c for c in classes)})
            print(json.dumps({"sampling": f"{schedule}:{cfg:g}:{top_k}:{top_p:g}", "seed": seed,
                              "fad": [[round(v, 1) for v in row] for row in matrix["fad"]],
                              "diagonal": rows[-1]["diagonal"]}), flush=True)
    result = {
        "run": str(args.run), "views": args.views, "steps": summary["steps"], "threads": args.threads,
        "batch": config.data.batch_size, "lr": config.optim.lr,
        "train_seconds": round(train_s, 1), "classes": classes, "backbone": BACKBONE,
        "validation": [{"step": v["step"], "loss": round(v["loss"], 4)} for v in summary.get("validation", [])],
        "generations": rows,
    }
    (args.out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
