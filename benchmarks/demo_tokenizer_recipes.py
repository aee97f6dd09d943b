"""How well the demo's tokenizer reconstructs each class after a fixed wall-clock budget, for one
training recipe: the measurement behind the demo's tokenizer settings and its music class
(docs/demo.md, "What changed in recipe 2").

It trains the demo tokenizer (``aar.demo.settings.demo_tokenizer_config`` with the changes given
on the command line) on ``DATA/train/<class>/`` for about ``--budget`` seconds with the demo's
own budgeted trainer, reconstructs every clip of ``DATA/heldout/<class>/`` and writes the class
x class FAD matrix (default ``mel`` backbone) of reconstructions (rows) against originals
(columns) to ``OUT/result.json``. ``DATA`` is laid out like a demo run's ``data/`` folder.

    python benchmarks/demo_tokenizer_recipes.py --data demo_out/data --out runs/recipe-rec \\
        --budget 600 --threads 1 --adversarial-start none
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, type=Path, help="folder with train/<class>/ and heldout/<class>/ clips")
    p.add_argument("--out", required=True, type=Path, help="run folder (tokenizer run, reconstructions, result.json)")
    p.add_argument("--budget", type=float, default=600.0, help="training seconds (default 600)")
    p.add_argument("--steps", type=int, default=None, help="train exactly this many steps instead of a budget")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    p.add_argument("--adversarial-start", default="none",
                   help="first adversarial step, or 'none' for reconstruction losses only (default none)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--betas", type=float, nargs=2, default=None)
    p.add_argument("--time-weight", type=float, default=None, help="weight of the waveform L1 term")
    p.add_argument("--n-filters", type=int, default=None, help="SEANet filters of the tiny model (8)")
    args = p.parse_args(argv)

    from aar.audio import list_audio_files
    from aar.demo.evaluation import BACKBONE, class_stats, clip_key, fad_matrix, reconstruct_clips
    from aar.demo.settings import demo_tokenizer_config
    from aar.demo.training import tokenizer_runner, train_within
    from aar.metrics import load_backbone
    from aar.tokenizer import SAT

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    cfg = demo_tokenizer_config("cpu")
    cfg.adversarial_start = None if args.adversarial_start.lower() == "none" else int(args.adversarial_start)
    if args.batch_size:
        cfg.data.batch_size = args.batch_size
    if args.lr:
        cfg.optim.lr = args.lr
    if args.betas:
        cfg.optim.betas = list(args.betas)
    if args.time_weight is not None:
        cfg.loss.time = args.time_weight
    if args.n_filters:
        cfg.model.n_filters = args.n_filters
        cfg.model.__post_init__()

    began = time.perf_counter()
    run = tokenizer_runner(cfg, args.data / "train", args.data / "heldout", args.out)
    summary, plan = train_within(run, args.out, None if args.steps else args.budget, 10, 5, args.steps)
    train_s = time.perf_counter() - began

    sat = SAT.from_pretrained(args.out / "model")
    heldout = args.data / "heldout"
    clips = {clip_key(path, heldout): path for path in list_audio_files(heldout)}
    reconstruct_clips(sat, clips, args.out / "original", args.out / "reconstructed")
    classes = sorted({key.split("/", 1)[0] for key in clips})
    backbone = load_backbone(BACKBONE)
    matrix = fad_matrix(class_stats(args.out / "reconstructed", classes, backbone),
                        class_stats(args.out / "original", classes, backbone))
    result = {
        "recipe": {"adversarial_start": cfg.adversarial_start, "batch_size": cfg.data.batch_size,
                   "lr": cfg.optim.lr, "betas": list(cfg.optim.betas), "time_weight": cfg.loss.time,
                   "n_filters": cfg.model.n_filters},
        "threads": args.threads, "steps": summary["steps"], "train_seconds": round(train_s, 1),
        "final_validation": (summary.get("validation") or [None])[-1],
        "backbone": BACKBONE, "fad_reconstructed_vs_heldout": matrix,
    }
    (args.out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"steps": result["steps"], "nearest": matrix["nearest"],
                      "fad": [[round(v, 1) for v in row] for row in matrix["fad"]]}))
    return result


if __name__ == "__main__":
    main()
