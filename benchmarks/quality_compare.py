"""Quality at equal size and equal training time: next-scale (AAR) against next-token prediction.

    python benchmarks/quality_compare.py --corpus /work/demo_corpus --tokenizer TOKENIZER_DIR \
        --out runs/quality [--minutes 6] [--depth 4 --width 128 --heads 4] [--threads 2]

1. The corpus's ``manifest.csv`` split is linked into ``OUT/data/{train,heldout}/<class>/``.
2. Both splits are tokenized once (class labels as conditions) into token caches.
3. Each architecture trains the same model size with the same optimiser and batch for the
   same wall-clock budget (``--minutes``; the training engine's time limit), one after the
   other, each from the same seed.
4. Held-out teacher-forced accuracy and loss, overall and per scale (the prediction of the
   codes of scale k given the true coarser tokens).
5. Each model generates as many clips per class as the held-out split holds (cfg 4, top-k
   200, top-p 0.95); FAD on the default (weight-free mel) backbone against the held-out clips,
   and against the tokenizer's reconstructions of them ("tokenizer space": what a perfect
   model of the tokens could reach, whatever the codec's own quality). For scale: the FAD of
   the reconstructions and of the training clips against the held-out clips, and of the
   training clips' reconstructions against the held-out reconstructions.

Writes ``OUT/quality.json`` and ``OUT/quality.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from aar import SAT
from aar.audio import load_audio, save_audio
from aar.data import open_source
from aar.metrics import evaluate_folders, load_backbone
from aar.transformer import load_transformer
from aar.transformer.token_cache import TokenCache, build_token_cache
from aar.transformer.training import AARTrainConfig, train_aar

ARCHS = ("next-scale", "next-token")
SAMPLING = dict(cfg=4.0, top_k=200, top_p=0.95)


def split_corpus(corpus: Path, out: Path) -> dict[str, Path]:
    """Symbolic links ``out/{train,heldout}/<class>/<file>`` following ``manifest.csv``."""
    dirs = {}
    with open(corpus / "manifest.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            link = out / row["split"] / row["class"] / Path(row["file"]).name
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to((corpus / row["file"]).resolve())
            dirs[row["split"]] = out / row["split"]
    return dirs


def tokenize(tokenizer: Path, data: Path, out: Path) -> TokenCache:
    if not (out / "cache.json").is_file():
        build_token_cache(SAT.from_pretrained(tokenizer), open_source(data), out, condition="label")
    return TokenCache(out)


def train_config(arch: str, args) -> AARTrainConfig:
    return AARTrainConfig.from_dict({
        "arch": arch,
        "model": {"depth": args.depth, "width": args.width, "num_heads": args.heads},
        "data": {"batch_size": args.batch_size, "val_fraction": 0.0},
        "optim": {"lr": args.lr, "warmup_steps": 20},
        "train": {"max_steps": 1_000_000, "time_limit_minutes": args.minutes, "log_every": 10,
                  "val_every": 0, "checkpoint_every": 0, "device": "cpu", "seed": 0},
        "sample": {"clips": 0},
    })


@torch.inference_mode()
def heldout_accuracy(model, cache: TokenCache) -> dict:
    """Teacher-forced accuracy and loss on every held-out window, overall and per scale."""
    batch = cache.batch(range(len(cache)))
    codes = batch["codes"]
    logits = torch.cat([model(c, x) for c, x in zip(batch["cond"].split(32), codes.split(32))])
    loss = F.cross_entropy(logits.transpose(1, 2), codes, reduction="none")
    hit = (logits.argmax(-1) == codes).float()
    out = {"accuracy": float(hit.mean()), "loss": float(loss.mean()), "per_scale": []}
    for k, (begin, end) in enumerate(model.scale_ranges()):
        out["per_scale"].append({"scale": k, "tokens": end - begin, "accuracy": float(hit[:, begin:end].mean()),
                                 "loss": float(loss[:, begin:end].mean())})
    return out


def generate_set(model, heldout: Path, out: Path) -> dict:
    """As many clips per class as ``heldout`` holds, written to ``out/<class>/``; timing."""
    seconds, clips = 0.0, 0
    for k, name in enumerate(model.config.class_names):
        n = len(list((heldout / name).glob("*.wav")))
        began = time.perf_counter()
        result = model.generate(torch.full((n,), k), seed=k, **SAMPLING)
        seconds += time.perf_counter() - began
        clips += n
        for i, wav in enumerate(result.audio):
            save_audio(out / name / f"{name}-{i:03d}.wav", wav.float(), result.sample_rate)
    return {"clips": clips, "seconds": round(seconds, 2), "seconds_per_clip": round(seconds / clips, 4),
            "ar_steps": model.num_steps}


def reconstruct_set(tokenizer: Path, source: Path, out: Path) -> None:
    sat = SAT.from_pretrained(tokenizer)
    for path in sorted(source.rglob("*.wav")):
        wav = load_audio(path, sat.sample_rate)
        save_audio(out / path.relative_to(source), sat.reconstruct(wav[None])[0], sat.sample_rate)


def fad(reference: Path, generated: Path, backbone) -> float:
    return evaluate_folders(reference, generated, backbone, metrics=["fad"], progress=False)["metrics"]["fad"]


def markdown(report: dict) -> str:
    rows = report["models"]
    head = ["", *[r["arch"] for r in rows]]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]

    def row(label, values):
        lines.append("| " + " | ".join([label, *values]) + " |")

    row("training steps in the budget", [str(r["train"]["steps"]) for r in rows])
    row("FAD vs held-out clips (mel backbone)", [f"{r['fad']:.2f}" for r in rows])
    row("FAD vs held-out reconstructions (tokenizer space)", [f"{r['fad_tokenizer_space']:.2f}" for r in rows])
    row("held-out accuracy (all tokens)", [f"{r['heldout']['accuracy']:.3f}" for r in rows])
    row("held-out loss (all tokens)", [f"{r['heldout']['loss']:.3f}" for r in rows])
    for k in range(len(rows[0]["heldout"]["per_scale"])):
        s = rows[0]["heldout"]["per_scale"][k]
        row(f"accuracy, scale {k} ({s['tokens']} tokens)", [f"{r['heldout']['per_scale'][k]['accuracy']:.3f}" for r in rows])
    row("generation: AR steps per clip", [str(r["generation"]["ar_steps"]) for r in rows])
    row("generation: s per clip (batch = clips of a class)", [f"{r['generation']['seconds_per_clip']:.3f}" for r in rows])
    ref = report["references"]
    lines += ["", f"References on the same backbone: against the held-out clips, the tokenizer's reconstructions "
              f"of them score {ref['reconstruction_fad']:.2f} and the training clips {ref['train_clips_fad']:.2f}; "
              f"in tokenizer space the training clips' reconstructions score "
              f"{ref['train_reconstructions_fad_tokenizer_space']:.2f}."]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", required=True, type=Path, help="demo corpus folder (with manifest.csv)")
    p.add_argument("--tokenizer", required=True, type=Path, help="trained SAT folder")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--minutes", type=float, default=6.0, help="training budget per architecture (wall clock)")
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, help="intra-op threads (default: torch's)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = args.out
    splits = split_corpus(args.corpus, out / "data")
    train_cache = tokenize(args.tokenizer, splits["train"], out / "tokens_train")
    heldout_cache = tokenize(args.tokenizer, splits["heldout"], out / "tokens_heldout")
    if heldout_cache.class_names != train_cache.class_names:
        raise SystemExit(f"class names differ between the splits: {train_cache.class_names} / {heldout_cache.class_names}")
    backbone = load_backbone("mel")
    for split, folder in splits.items():
        if not (out / "reconstructed" / split).is_dir():
            reconstruct_set(args.tokenizer, folder, out / "reconstructed" / split)
    models = []
    for arch in ARCHS:
        run = out / arch
        if not (run / "model" / "config.json").is_file():
            train_aar(train_config(arch, args), out / "tokens_train", run)
        summary = json.loads((run / "summary.json").read_text())
        model = load_transformer(run / "model")
        gen = generate_set(model, splits["heldout"], out / "generated" / arch)
        models.append({
            "arch": arch,
            "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
            "train": {"steps": summary["end_step"], "seconds": summary["elapsed_s"],
                      "samples_per_s": summary["samples_per_s"], "stopped": summary.get("stopped_early")},
            "heldout": heldout_accuracy(model, heldout_cache),
            "generation": gen,
            "fad": fad(splits["heldout"], out / "generated" / arch, backbone),
            "fad_tokenizer_space": fad(out / "reconstructed" / "heldout", out / "generated" / arch, backbone),
        })
        print(json.dumps({k: v for k, v in models[-1].items() if k != "heldout"}), flush=True)
    report = {
        "corpus": str(args.corpus), "tokenizer": str(args.tokenizer), "minutes_per_arch": args.minutes,
        "model": {"depth": args.depth, "width": args.width, "num_heads": args.heads}, "batch_size": args.batch_size,
        "lr": args.lr, "sampling": SAMPLING, "threads": torch.get_num_threads(), "torch": torch.__version__,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "references": {"reconstruction_fad": fad(splits["heldout"], out / "reconstructed" / "heldout", backbone),
                       "train_clips_fad": fad(splits["heldout"], splits["train"], backbone),
                       "train_reconstructions_fad_tokenizer_space": fad(out / "reconstructed" / "heldout",
                                                                        out / "reconstructed" / "train", backbone)},
        "models": models,
    }
    (out / "quality.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "quality.md").write_text(markdown(report) + "\n")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
