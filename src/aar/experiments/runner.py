"""Running an experiment: train every variant for the same wall-clock budget on the same data,
evaluate each the same way, write ``results.json`` and ``results.md`` into the output folder.

Layout of OUT::

    data/{train,heldout}/<class>/   links to a demo-style corpus's splits (when --data has a manifest)
    <variant>/run/                  the variant's training run (model/, summary.json, ...)
    <variant>/audio/{original,reconstructed}/   held-out clips and their reconstructions
    <variant>/result.json           the variant's row (a finished variant is skipped on a rerun)
    cfg_<value>/<class>/NNN.wav     (guidance) clips generated at each guidance scale
    results.json, results.md        every row, and the table
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path


from aar.audio import list_audio_files
from aar.checkpoint import atomic_write_text
from aar.experiments.report import markdown_table
from aar.experiments.spec import ExperimentSpec, Variant

log = logging.getLogger("aar.experiments")

RESULTS = "results.json"
TABLE = "results.md"
MAX_STEPS = 1_000_000  # runs stop on the time limit; the cosine schedule is effectively flat


def prepare_data(data: str | os.PathLike, eval_data: str | os.PathLike | None, out: Path) -> tuple[Path, Path]:
    """(training folder, held-out folder). A corpus with ``manifest.csv`` (``aar demo``'s, e.g.
    built by scripts/build_demo_corpus.py) is split by its ``split`` column into links under
    ``out/data``; otherwise ``data`` is the training folder and ``eval_data`` is required."""
    data = Path(data)
    if not data.is_dir():
        raise FileNotFoundError(f"{data}: no such data folder")
    if (data / "manifest.csv").is_file() and eval_data is None:
        from aar.demo.corpus import load_manifest

        for record in load_manifest(data):
            link = out / "data" / record.split / record.label / Path(record.file).name
            if link.exists():
                continue
            link.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.symlink((data / record.file).resolve(), link)
            except OSError:
                shutil.copyfile(data / record.file, link)
        return out / "data" / "train", out / "data" / "heldout"
    if eval_data is None:
        raise ValueError(f"{data}: no manifest.csv to split; pass --eval-data with held-out clips")
    if not Path(eval_data).is_dir():
        raise FileNotFoundError(f"{eval_data}: no such held-out folder")
    return data, Path(eval_data)


def run_experiment(
    spec: ExperimentSpec,
    data: str | os.PathLike,
    out: str | os.PathLike,
    minutes_per_variant: float = 2.0,
    eval_data: str | os.PathLike | None = None,
    aar_model: str | os.PathLike | None = None,
    device: str = "auto",
) -> dict:
    """Run ``spec`` and write OUT/results.json and OUT/results.md; returns the results mapping."""
    from aar.demo.threads import pick_threads

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    train_dir, heldout_dir = prepare_data(data, eval_data, out)
    threads, _ = pick_threads()  # one thread is often several times faster on a busy CPU
    log.info("CPU threads: %d", threads)
    began = time.perf_counter()
    if spec.kind == "tokenizer":
        rows = [run_tokenizer_variant(v, train_dir, heldout_dir, out / v.name, minutes_per_variant, device)
                for v in spec.variants]
    else:
        if aar_model is None:
            raise ValueError("the guidance experiment needs --aar-model (a class-conditioned AAR from "
                             "`aar train-aar` or `aar demo`)")
        rows = run_guidance(spec, Path(aar_model), train_dir, heldout_dir, out, device)
    results = {
        "experiment": spec.name,
        "title": spec.title,
        "kind": spec.kind,
        "data": {"train": str(train_dir), "heldout": str(heldout_dir)},
        "minutes_per_variant": minutes_per_variant if spec.kind == "tokenizer" else None,
        "aar_model": str(aar_model) if aar_model else None,
        "device": device,
        "cpu_threads": threads,
        "wall_s": round(time.perf_counter() - began, 1),
        "rows": rows,
    }
    atomic_write_text(json.dumps(results, indent=2) + "\n", out / RESULTS)
    atomic_write_text(markdown_table(results) + "\n", out / TABLE)
    return results


def run_tokenizer_variant(variant: Variant, train_dir: Path, heldout_dir: Path, vdir: Path, minutes: float,
                          device: str) -> dict:
    """Train one tokenizer variant for ``minutes`` of wall time, then reconstruct the held-out
    clips and measure them (MEL/STFT distances, FAD with the mel backbone)."""
    from aar.demo.evaluation import clip_key, reconstruct_clips, reconstruction_metrics
    from aar.tokenizer import SAT
    from aar.tokenizer.hifigan_discriminators import build_discriminator, discriminator_names
    from aar.train.engine import TrainConfig
    from aar.train.tokenizer import train_tokenizer

    done = vdir / "result.json"
    if done.is_file():
        log.info("%s: already finished, reusing %s", variant.name, done)
        return json.loads(done.read_text())
    cfg = variant.config
    cfg.train = TrainConfig(max_steps=MAX_STEPS, time_limit_minutes=minutes, val_every=0, checkpoint_every=0,
                            log_every=cfg.train.log_every, seed=cfg.train.seed, device=device)
    run_dir = vdir / "run"
    if run_dir.exists():
        shutil.rmtree(run_dir)  # an unfinished run: start again so every variant gets the same budget
    log.info("%s: training for %.1f min (%d scales, %.0f tokens/s)", variant.name, minutes,
             cfg.model.num_scales, cfg.model.tokens_per_second)
    trained = train_tokenizer(cfg, train_dir, run_dir, val_data=heldout_dir)
    sat = SAT.from_pretrained(run_dir / "model", device=next(trained.model.parameters()).device)
    clips = {clip_key(p, heldout_dir): p for p in list_audio_files(heldout_dir)}
    reconstruct_clips(sat, clips, vdir / "audio" / "original", vdir / "audio" / "reconstructed")
    metrics = reconstruction_metrics(vdir / "audio" / "original", vdir / "audio" / "reconstructed")
    disc = build_discriminator(cfg.discriminator)
    summary = trained.summary
    row = {
        "variant": variant.name,
        "overrides": variant.overrides,
        "scales": cfg.model.scales,
        "num_scales": cfg.model.num_scales,
        "window_s": cfg.model.window_seconds,
        "tokens_per_window": cfg.model.tokens_per_window,
        "tokens_per_s": round(cfg.model.tokens_per_second, 1),
        "phi": cfg.model.phi,
        "num_phi": cfg.model.num_phi,
        "phi_kernel": cfg.model.phi_kernel,
        "sat_parameters": sum(p.numel() for p in sat.parameters()),
        "discriminators": discriminator_names(disc),
        "discriminator_parameters": sum(p.numel() for p in disc.parameters()),
        "steps": summary.get("end_step"),
        "train_s": summary.get("elapsed_s"),
        "mel_distance": metrics["metrics"]["mel_distance"],
        "stft_distance": metrics["metrics"]["stft_distance"],
        "fad_mel": metrics["metrics"]["fad"],
        "heldout_clips": metrics["counts"]["pairs"],
        "backbone": metrics["backbone"],
    }
    atomic_write_text(json.dumps(row, indent=2) + "\n", done)
    log.info("%s: %s steps, MEL %.3f, STFT %.3f, FAD %.3f", variant.name, row["steps"], row["mel_distance"],
             row["stft_distance"], row["fad_mel"])
    return row


def run_guidance(spec: ExperimentSpec, aar_model: Path, train_dir: Path, heldout_dir: Path, out: Path,
                 device: str) -> list[dict]:
    """Generate ``clips_per_class`` clips of every class at each guidance scale (same seeds) and
    measure them against the held-out clips: FAD (mel backbone) over all classes and per class,
    how many classes' generations lie nearest their own class, and, with a logistic-regression
    class probe trained on ``train_dir`` (:mod:`aar.experiments.probe`, standing in for the
    AudioSet classifier), ISc (one split), KL(held-out clip of the class || generated clip) and the
    probe's accuracy on the generated clips."""
    from aar.experiments.probe import ClassProbe, clip_features
    from aar.metrics.classifier import inception_score, kl_divergence

    from aar.demo.evaluation import BACKBONE, class_stats, fad_matrix, generate_per_class
    from aar.metrics import EmbeddingStats, embed_clips, load_backbone
    from aar.metrics.clips import collect_clips
    from aar.train.distributed import resolve_device
    from aar.transformer import AAR

    model = AAR.from_pretrained(aar_model, device=resolve_device(device)).eval()
    names = list(model.config.class_names)
    if not names:
        raise ValueError(f"{aar_model}: not a class-conditioned AAR (no class_names); the guidance sweep needs labels")
    backbone = load_backbone(BACKBONE)
    reference = class_stats(heldout_dir, names, backbone)

    def pooled(folder: Path) -> EmbeddingStats:
        embedded = embed_clips(collect_clips(folder, folder.name), backbone, progress=False)
        return EmbeddingStats.from_embeddings(embedded.all_embeddings(backbone.embedding_dim), str(folder))

    reference_all = pooled(heldout_dir)
    probe = ClassProbe(names).fit(*clip_features(train_dir, backbone))
    ref_names, ref_features = clip_features(heldout_dir, backbone)
    probe_heldout_accuracy = probe.accuracy(ref_names, ref_features)
    ref_logits = probe.logits(ref_features)
    ref_of_class = {n: [i for i, r in enumerate(ref_names) if r.split("/", 1)[0] == n] for n in names}
    log.info("class probe: %.0f%% accuracy on the held-out clips", 100 * probe_heldout_accuracy)
    rows = []
    for cfg in spec.cfg:
        folder = out / f"cfg_{cfg:g}"
        if folder.exists():
            shutil.rmtree(folder)
        gen = generate_per_class(model, names, spec.clips_per_class, folder, cfg, spec.top_k, spec.top_p, spec.seed)
        matrix = fad_matrix(class_stats(folder, names, backbone), reference)
        own = {n: matrix["fad"][i][matrix["columns"].index(n)] for i, n in enumerate(matrix["rows"])}
        gen_names, gen_features = clip_features(folder, backbone)
        gen_logits = probe.logits(gen_features)
        # each generated clip is paired with a held-out clip of its class (cycling through them)
        pair = [ref_of_class[g.split("/", 1)[0]][int(Path(g).name) % len(ref_of_class[g.split("/", 1)[0]])]
                for g in gen_names]
        row = {
            "cfg": cfg,
            "top_k": spec.top_k,
            "top_p": spec.top_p,
            "clips": gen["clips"],
            "fad_mel": pooled(folder).distance(reference_all),
            "fad_mel_own_class": sum(own.values()) / len(own),
            "per_class_fad_mel": own,
            "nearest_class_matches": sum(matrix["nearest"][n] == n for n in names),
            "isc_probe": inception_score(gen_logits, splits=1)[0],
            "kl_probe": float(kl_divergence(gen_logits, ref_logits[pair]).mean()),
            "probe_accuracy": probe.accuracy(gen_names, gen_features),
            "probe_heldout_accuracy": probe_heldout_accuracy,
            "classes": len(names),
            "generation_s": gen["seconds"],
        }
        log.info("cfg %g: FAD %.3f, own-class FAD %.3f, %d/%d classes nearest their own", cfg, row["fad_mel"],
                 row["fad_mel_own_class"], row["nearest_class_matches"], len(names))
        rows.append(row)
    return rows
