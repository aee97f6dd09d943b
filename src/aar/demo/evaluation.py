"""What the demo measures: the tokenizer's reconstructions of held-out clips (MEL and STFT
distances, FAD), coarse-to-fine decoding, class-conditioned generation, and the class x class
matrix of FADs between generated and held-out clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from aar.audio import load_audio, save_audio
from aar.metrics import EmbeddingStats, embed_clips, evaluate_folders, load_backbone

BACKBONE = "mel"  # the default backbone of `aar evaluate`: weight-free, needs no download


def clip_key(path: Path, root: Path) -> str:
    """``root/<class>/<name>.wav`` -> ``"<class>/<name>"``."""
    return path.relative_to(root).with_suffix("").as_posix()


@torch.inference_mode()
def reconstruct_clips(sat, clips: dict[str, Path], original_dir: Path, recon_dir: Path, batch_size: int = 16) -> None:
    """Copy each clip (``{"<class>/<name>": path}``) to ``original_dir/<class>/<name>.wav`` at the
    tokenizer's rate and write its reconstruction (all scales) to ``recon_dir`` under the same name."""
    names = sorted(clips)
    sr = sat.sample_rate
    for i in range(0, len(names), batch_size):
        chunk = names[i : i + batch_size]
        wavs = [load_audio(clips[n], sample_rate=sr) for n in chunk]  # [1 x T] each
        length = max(w.shape[-1] for w in wavs)
        batch = torch.stack([torch.nn.functional.pad(w, (0, length - w.shape[-1])) for w in wavs]).to(sat.device)
        recon = sat.reconstruct(batch).cpu()
        for name, wav, rec in zip(chunk, wavs, recon):
            save_audio(original_dir / f"{name}.wav", wav, sr)
            save_audio(recon_dir / f"{name}.wav", rec[..., : wav.shape[-1]], sr)


@torch.inference_mode()
def coarse_to_fine(sat, wav_path: Path, out_dir: Path) -> list[Path]:
    """Decode one clip's codes scale by scale: ``out_dir/scale_KK.wav`` is the audio of the first
    KK scales (the last file uses every scale). Returns the files, coarse to fine."""
    wav = load_audio(wav_path, sample_rate=sat.sample_rate)[:, : sat.window_samples]
    codes = sat.encode(wav[None].to(sat.device))
    latents = torch.cat([sat.latent_from_codes(codes[: k + 1]) for k in range(len(codes))])  # one row per prefix
    audio = sat.decode_latent(latents)[..., : wav.shape[-1]].cpu()
    return [save_audio(out_dir / f"scale_{k + 1:02d}.wav", a, sat.sample_rate) for k, a in enumerate(audio)]


@torch.inference_mode()
def generate_per_class(model, class_names: list[str], per_class: int, out_dir: Path, cfg: float, top_k: int,
                       top_p: float, seed: int, batch_size: int = 8, cfg_schedule: str = "linear") -> dict:
    """``per_class`` clips of every class into ``out_dir/<class>/NNN.wav``; returns the settings
    and the time generation took (audio decoding included, file writing not)."""
    import time

    seconds = 0.0
    for c, name in enumerate(class_names):
        for start in range(0, per_class, batch_size):
            n = min(batch_size, per_class - start)
            began = time.perf_counter()
            out = model.generate(torch.tensor([c]), cfg=cfg, cfg_schedule=cfg_schedule, top_k=top_k, top_p=top_p,
                                 seed=seed + 1000 * c + start, num_samples=n)
            seconds += time.perf_counter() - began
            for k, wav in enumerate(out.audio.float().cpu()):
                save_audio(out_dir / name / f"{start + k:03d}.wav", wav, out.sample_rate)
    return {"clips_per_class": per_class, "cfg": cfg, "cfg_schedule": cfg_schedule, "top_k": top_k, "top_p": top_p, "seed": seed,
            "seconds": round(seconds, 3), "clips": per_class * len(class_names)}


def reconstruction_metrics(original_dir: Path, recon_dir: Path, backbone=None) -> dict:
    """MEL distance, STFT distance and FAD of the reconstructions against the originals, overall
    and per class (the folder under the root), with the default backbone."""
    backbone = backbone or load_backbone(BACKBONE)
    report = evaluate_folders(original_dir, recon_dir, backbone, metrics=["fad", "mel", "stft"], progress=False)
    per_class: dict[str, dict[str, list[float]]] = {}
    for name, values in report["per_pair"].items():
        cls = name.split("/", 1)[0]
        for key, value in values.items():
            per_class.setdefault(cls, {}).setdefault(key, []).append(value)
    return {
        "metrics": report["metrics"],
        "per_class": {c: {k: float(np.mean(v)) for k, v in d.items()} for c, d in sorted(per_class.items())},
        "counts": report["counts"],
        "backbone": report["backbone"]["name"],
        "notes": report["notes"],
    }


def class_stats(folder: Path, class_names: list[str], backbone) -> dict[str, EmbeddingStats]:
    """Embedding statistics of the clips of each class folder ``folder/<class>/``."""
    from aar.metrics.clips import collect_clips

    stats = {}
    for name in class_names:
        embedded = embed_clips(collect_clips(folder / name, name), backbone, progress=False)
        stats[name] = EmbeddingStats.from_embeddings(embedded.all_embeddings(backbone.embedding_dim), f"{folder}/{name}")
    return stats


def fad_matrix(rows: dict[str, EmbeddingStats], columns: dict[str, EmbeddingStats]) -> dict:
    """FAD of every row set against every column set: ``{"rows", "columns", "fad": [[...]],
    "nearest": {row: column}, "matches": bool}`` where ``matches`` says each row is nearest the
    column of the same name."""
    names_r, names_c = list(rows), list(columns)
    fad = [[rows[r].distance(columns[c]) for c in names_c] for r in names_r]
    nearest = {r: names_c[int(np.argmin(fad[i]))] for i, r in enumerate(names_r)}
    return {"rows": names_r, "columns": names_c, "fad": fad, "nearest": nearest,
            "matches": all(nearest[r] == r for r in names_r if r in columns)}
