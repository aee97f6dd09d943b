"""Evaluate a folder of generated clips against a folder of reference clips.

Paired metrics (MEL distance, STFT distance, KL) compare files of the same name (relative path
without extension); FAD and ISc use the sets as they are. Each backbone gets the audio
resampled to its own rate; the spectral distances run at 24 kHz. The reference set's
statistics and logits are cached (see :mod:`aar.metrics.cache`), so it is embedded once.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from aar.audio import AudioError
from aar.metrics.backbones import Backbone
from aar.metrics.backbones.base import full_precision
from aar.metrics.cache import ReferenceCache, ReferenceEntry
from aar.metrics.classifier import ISC_SPLITS, inception_score, kl_divergence
from aar.metrics.clips import collect_clips, read_ahead, read_clip
from aar.metrics.errors import MetricError
from aar.metrics.frechet import MIN_EMBEDDINGS, EmbeddingStats
from aar.metrics.spectral import MelDistance, STFTDistance

METRICS = ("fad", "mel", "stft", "isc", "kl")
PAIRED = ("mel", "stft", "kl")
NEEDS_CLASSIFIER = ("isc", "kl")
SPECTRAL_SAMPLE_RATE = 24_000


@dataclass
class EmbeddedSet:
    """Embeddings of the readable clips of a set, in order."""

    names: list[str] = field(default_factory=list)
    embeddings: list[np.ndarray] = field(default_factory=list)  # one [N_i x D] array per clip
    logits: list[np.ndarray] = field(default_factory=list)  # one [C] array per clip, when available
    skipped: list[dict] = field(default_factory=list)

    def all_embeddings(self, dim: int) -> np.ndarray:
        return np.concatenate(self.embeddings) if self.embeddings else np.zeros((0, dim))

    def logits_by_name(self) -> dict[str, np.ndarray]:
        return dict(zip(self.names, self.logits))


def default_metrics(backbone: Backbone) -> list[str]:
    """Every metric the backbone supports: ISc and KL only with a classifier."""
    return [m for m in METRICS if backbone.num_classes or m not in NEEDS_CLASSIFIER]


@torch.inference_mode()
def embed_clips(
    clips: dict[str, Path], backbone: Backbone, batch_size: int = 16, desc: str = "embedding", progress: bool = True
) -> EmbeddedSet:
    """Run ``backbone`` over ``clips`` (read at its sample rate), batching consecutive clips of equal length.

    Unreadable files are skipped and listed in ``skipped``.
    """
    device = module_device(backbone)
    result = EmbeddedSet()
    batch_names: list[str] = []
    batch_wavs: list[torch.Tensor] = []

    def flush():
        if not batch_wavs:
            return
        with full_precision():
            output = backbone(torch.stack(batch_wavs).to(device))
        result.names.extend(batch_names)
        result.embeddings.extend(output.embeddings.float().cpu().numpy())
        if output.logits is not None:
            result.logits.extend(output.logits.float().cpu().numpy())
        batch_names.clear()
        batch_wavs.clear()

    items = list(clips.items())
    with tqdm(total=len(items), desc=desc, unit="clip", disable=not progress) as bar:
        for (name, path), wav in read_ahead(items, lambda item: read_clip(item[1], backbone.sample_rate)):
            if isinstance(wav, AudioError):
                result.skipped.append({"file": str(path), "reason": str(wav)})
            else:
                if batch_wavs and (len(batch_wavs) == batch_size or wav.shape[-1] != batch_wavs[0].shape[-1]):
                    flush()
                batch_names.append(name)
                batch_wavs.append(wav)
            bar.update(1)
        flush()
    return result


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of a module's first parameter or buffer (CPU for an empty module)."""
    for tensor in itertools.chain(module.parameters(), module.buffers()):
        return tensor.device
    return torch.device("cpu")


def _stats_or_none(embedded: EmbeddedSet, dim: int) -> EmbeddingStats | None:
    embeddings = embedded.all_embeddings(dim)
    return EmbeddingStats.from_embeddings(embeddings) if embeddings.shape[0] >= MIN_EMBEDDINGS else None


def _require_stats(stats: EmbeddingStats | None, role: str, embeddings: int, clips: int) -> EmbeddingStats:
    if stats is None:
        raise MetricError(
            f"FAD needs at least {MIN_EMBEDDINGS} embeddings per set to estimate a covariance; the {role} set "
            f"gave {embeddings} from {clips} readable clip(s); add clips"
        )
    return stats


@torch.inference_mode()
def paired_spectral_distances(
    pairs: list[tuple[str, Path, Path]], metrics: list[str], device: torch.device | str = "cpu", progress: bool = True
) -> tuple[dict[str, dict[str, float]], list[dict], int]:
    """MEL/STFT distances per pair at 24 kHz: ``(per_pair, skipped, length_mismatches)``.

    Pairs of different lengths are compared over the shorter one (and counted); a pair that
    cannot be read, or is too short for the longest window, is skipped and listed.
    """
    modules = {}
    if "mel" in metrics:
        modules["mel_distance"] = MelDistance(SPECTRAL_SAMPLE_RATE).to(device)
    if "stft" in metrics:
        modules["stft_distance"] = STFTDistance().to(device)
    per_pair: dict[str, dict[str, float]] = {}
    skipped: list[dict] = []
    mismatched = 0

    def read_pair(pair):
        _, ref_path, gen_path = pair
        return read_clip(ref_path, SPECTRAL_SAMPLE_RATE), read_clip(gen_path, SPECTRAL_SAMPLE_RATE)

    for (name, ref_path, gen_path), (ref, gen) in tqdm(
        read_ahead(pairs, read_pair), total=len(pairs), desc="spectral distances", unit="pair", disable=not progress
    ):
        errors = [(p, w) for p, w in ((ref_path, ref), (gen_path, gen)) if isinstance(w, AudioError)]
        if errors:
            skipped.extend({"file": str(p), "reason": str(w)} for p, w in errors)
            continue
        length = min(ref.shape[-1], gen.shape[-1])
        mismatched += ref.shape[-1] != gen.shape[-1]
        ref, gen = ref[:length].to(device).unsqueeze(0), gen[:length].to(device).unsqueeze(0)
        try:
            per_pair[name] = {key: float(module(gen, ref)[0]) for key, module in modules.items()}
        except ValueError as exc:
            skipped.append({"file": f"{gen_path} (pair {name})", "reason": str(exc)})
    return per_pair, skipped, mismatched


def _reference_entry(
    clips: dict[str, Path], backbone: Backbone, batch_size: int, cache_dir, progress: bool
) -> tuple[ReferenceEntry, str | None, bool]:
    """The reference set under ``backbone``: ``(entry, cache file or None, read from the cache?)``."""
    cache = ReferenceCache(cache_dir) if cache_dir is not None else None
    key = cache.key(clips, backbone.name, backbone.weights) if cache else None
    entry = cache.load(key) if cache else None
    if entry is not None:
        return entry, str(cache.path(key)), True
    embedded = embed_clips(clips, backbone, batch_size, f"reference ({backbone.name})", progress)
    entry = ReferenceEntry(
        stats=_stats_or_none(embedded, backbone.embedding_dim),
        names=embedded.names,
        logits=np.stack(embedded.logits) if embedded.logits else None,
        embedding_count=sum(len(e) for e in embedded.embeddings),
        skipped=embedded.skipped,
    )
    return entry, (str(cache.save(key, entry)) if cache else None), False


def _kl(reference: ReferenceEntry, generated: EmbeddedSet, common: list[str]) -> tuple[list[str], dict[str, torch.Tensor]]:
    """Per-pair KL, softmax and sigmoid variants, over the common names readable on both sides."""
    ref_logits = dict(zip(reference.names, reference.logits)) if reference.logits is not None else {}
    gen_logits = generated.logits_by_name()
    names = [n for n in common if n in ref_logits and n in gen_logits]
    if not names:
        raise MetricError("KL needs at least 1 readable pair of clips with the same name; none was readable")
    gen = torch.from_numpy(np.stack([gen_logits[n] for n in names]))
    ref = torch.from_numpy(np.stack([ref_logits[n] for n in names]))
    return names, {f"kl_{a}": kl_divergence(gen, ref, a) for a in ("softmax", "sigmoid")}


def evaluate_folders(
    reference: str | Path,
    generated: str | Path,
    backbone: Backbone,
    metrics: list[str] | None = None,
    batch_size: int = 16,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Compute ``metrics`` (default: all the backbone supports) and return a JSON-ready report.

    The report has ``metrics`` (name -> value), ``counts``, ``backbone``, ``skipped`` (unreadable
    files with the reason), ``unpaired`` (names present on one side only), ``notes``,
    ``reference_cache`` and ``per_pair`` values. Raises :class:`MetricError` for input that cannot
    give the requested metrics (empty folders, no common names for paired metrics, too few clips).
    """
    explicit = metrics is not None
    metrics = list(dict.fromkeys(metrics)) if explicit else default_metrics(backbone)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise MetricError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(METRICS)}")
    if not backbone.num_classes and any(m in NEEDS_CLASSIFIER for m in metrics):
        raise MetricError(
            f"{' and '.join(m for m in metrics if m in NEEDS_CLASSIFIER)} need AudioSet classifier outputs: "
            f"use --backbone panns (the {backbone.name} backbone has no classifier)"
        )
    ref_clips = collect_clips(reference, "reference")
    gen_clips = collect_clips(generated, "generated")
    common = sorted(set(ref_clips) & set(gen_clips))
    notes: list[str] = []
    if not backbone.comparable:
        notes.append(f"the '{backbone.name}' backbone is weight-free: its FAD is not comparable with published FADs")
    if not common and any(m in PAIRED for m in metrics):
        paired = [m for m in metrics if m in PAIRED]
        if explicit:
            raise MetricError(
                f"no file names in common between {reference} and {generated}; {', '.join(paired)} compare "
                "files of the same name"
            )
        metrics = [m for m in metrics if m not in PAIRED]
        notes.append(f"no file names in common: skipped the paired metrics ({', '.join(paired)})")
    unpaired = {
        "reference_only": sorted(set(ref_clips) - set(gen_clips)),
        "generated_only": sorted(set(gen_clips) - set(ref_clips)),
    }
    if common and (unpaired["reference_only"] or unpaired["generated_only"]):
        notes.append(
            f"{len(common)} pairs by name; {len(unpaired['reference_only'])} reference and "
            f"{len(unpaired['generated_only'])} generated files have no counterpart (listed under 'unpaired')"
        )

    results: dict[str, float] = {}
    per_pair: dict[str, dict[str, float]] = {name: {} for name in common}
    skipped: list[dict] = []
    counts = {"reference_files": len(ref_clips), "generated_files": len(gen_clips), "pairs": len(common)}
    cache_path = None

    if any(m in ("fad", "kl") for m in metrics):
        reference_entry, cache_path, cached = _reference_entry(ref_clips, backbone, batch_size, cache_dir, progress)
        if cached:
            notes.append(f"reference statistics read from the cache {cache_path}")
        skipped.extend(reference_entry.skipped)
        counts["reference_embeddings"] = reference_entry.embedding_count

    if any(m in ("fad", "isc", "kl") for m in metrics):
        generated_set = embed_clips(gen_clips, backbone, batch_size, f"generated ({backbone.name})", progress)
        skipped.extend(generated_set.skipped)
        counts["generated_embeddings"] = sum(len(e) for e in generated_set.embeddings)

    if "fad" in metrics:
        reference_stats = _require_stats(
            reference_entry.stats, "reference", reference_entry.embedding_count, len(reference_entry.names)
        )
        generated_stats = _require_stats(
            _stats_or_none(generated_set, backbone.embedding_dim),
            "generated",
            counts["generated_embeddings"],
            len(generated_set.names),
        )
        results["fad"] = reference_stats.distance(generated_stats)
        for role, stats in (("reference", reference_stats), ("generated", generated_stats)):
            if stats.count <= stats.dim:
                notes.append(
                    f"the {role} set gave {stats.count} embeddings for {stats.dim} dimensions: its covariance is "
                    "rank-deficient and the FAD is biased upwards; use more clips"
                )

    if "isc" in metrics:
        if not generated_set.logits:
            raise MetricError("the Inception Score needs at least 1 readable generated clip")
        splits = min(ISC_SPLITS, len(generated_set.logits))
        if splits < ISC_SPLITS:
            notes.append(f"ISc over {splits} split(s) instead of {ISC_SPLITS}: only {splits} generated clips")
        logits = torch.from_numpy(np.stack(generated_set.logits))
        results["isc_mean"], results["isc_std"] = inception_score(logits, splits=splits)
        counts["isc_splits"] = splits

    if "kl" in metrics:
        names, kl_values = _kl(reference_entry, generated_set, common)
        for key, values in kl_values.items():
            results[key] = float(values.mean())
            for name, value in zip(names, values.tolist()):
                per_pair[name][key] = value
        counts["kl_pairs"] = len(names)

    if "mel" in metrics or "stft" in metrics:
        pairs = [(name, ref_clips[name], gen_clips[name]) for name in common]
        distances, pair_skipped, mismatched = paired_spectral_distances(pairs, metrics, module_device(backbone), progress)
        known = {entry["file"] for entry in skipped}
        skipped.extend(entry for entry in pair_skipped if entry["file"] not in known)
        if not distances:
            raise MetricError("MEL/STFT distances need at least 1 readable pair of clips; none was readable")
        for key in next(iter(distances.values())):
            results[key] = float(np.mean([values[key] for values in distances.values()]))
        for name, values in distances.items():
            per_pair[name].update(values)
        counts["spectral_pairs"] = len(distances)
        if mismatched:
            notes.append(f"{mismatched} pairs differ in length: each was compared over its shorter clip")

    if skipped:
        notes.append(f"{len(skipped)} file(s) could not be used and were skipped (listed under 'skipped')")
    return {
        "reference": str(reference),
        "generated": str(generated),
        "backbone": {
            "name": backbone.name,
            "weights": backbone.weights,
            "sample_rate": backbone.sample_rate,
            "embedding_dim": backbone.embedding_dim,
            "comparable_with_published": backbone.comparable,
        },
        "metrics": results,
        "counts": counts,
        "skipped": skipped,
        "unpaired": unpaired,
        "notes": notes,
        "reference_cache": cache_path,
        "per_pair": {name: values for name, values in per_pair.items() if values},
    }
