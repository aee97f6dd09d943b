"""Building the demo corpus: real recordings from Debian packages cut into one-second clips.

``build_corpus(DIR)`` writes::

    DIR/<class>/<source>-<item>-<k>.wav   24 kHz mono 16-bit, one second each
    DIR/manifest.csv                      one row a clip: class, split, provenance, licence
    DIR/licenses/<package>/...            each package's copyright file and credit files
    DIR/corpus.json                       settings, packages and counts; written last

The build is deterministic given the same package versions (items are ordered by hashes of
their paths, never by chance), idempotent (a complete DIR built with the same settings is
left as it is), and held-out clips never share a recording with training clips.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from tqdm import tqdm

from aar.audio.io import resample, save_audio
from aar.demo.clips import SAMPLE_RATE, Crop, cut_clips
from aar.demo.debian import PackageTree, fetch_packages
from aar.demo.sources import SOURCES, Source, SourceItem

RECIPE_VERSION = 3  # 2: music from four game soundtracks instead of freepats' single notes;
# 3: environmental clips sound for their whole second (no one-shot padded with silence)
ORDER_SEED = "aar-demo-corpus-v1"
TRAIN, HELDOUT = "train", "heldout"
MANIFEST = "manifest.csv"
SUMMARY = "corpus.json"


class DemoCorpusError(RuntimeError):
    """The corpus cannot be built or read; the message says why and what to do."""


@dataclass(frozen=True)
class ClipRecord:
    """One row of ``manifest.csv``; ``file`` is relative to the corpus folder."""

    file: str
    label: str
    split: str
    package: str
    version: str
    source_file: str
    start_s: float
    content_s: float
    licence: str
    credit: str


MANIFEST_COLUMNS = tuple("class" if f.name == "label" else f.name for f in fields(ClipRecord))


@dataclass(frozen=True)
class CorpusSummary:
    """What a corpus folder holds: clip counts per class and split, size, package versions."""

    out_dir: Path
    counts: dict[str, dict[str, int]]
    total_bytes: int
    packages: dict[str, str]
    built: bool  # False when an existing complete corpus was reused


def build_corpus(
    out_dir: str | Path,
    clips_per_class: int = 120,
    heldout_fraction: float = 0.2,
    cache_dir: str | Path | None = None,
    sources: tuple[Source, ...] = SOURCES,
    fetch: Callable[[list[str], Path | None], dict[str, PackageTree]] = fetch_packages,
    progress: bool = True,
) -> CorpusSummary:
    """Build the demo corpus into ``out_dir`` (or reuse it when already complete).

    Args:
        clips_per_class: clips of each class, shared among its sources by their weights.
        heldout_fraction: share of each class's clips listed as ``heldout`` in the manifest.
        cache_dir: where fetched packages are unpacked (default ``~/.cache/aar/debian``).
        sources, fetch: the recipe and the package fetcher (tests substitute small ones).

    Raises:
        DemoCorpusError: bad settings, ``out_dir`` holds something else, or no clip at all
            could be made for a class.
        aar.demo.debian.PackageError: a package cannot be obtained.
    """
    if clips_per_class < 1:
        raise DemoCorpusError(f"clips_per_class must be at least 1, got {clips_per_class}")
    if not 0.0 < heldout_fraction < 1.0:
        raise DemoCorpusError(f"heldout_fraction must be between 0 and 1, got {heldout_fraction}")
    out_dir = Path(out_dir)
    settings = _settings(clips_per_class, heldout_fraction, sources)
    if is_complete(out_dir, settings):
        return read_summary(out_dir)
    if out_dir.exists() and not _replaceable(out_dir):
        raise DemoCorpusError(f"{out_dir} exists and is not a demo corpus; remove it or choose another folder")

    packages = list(dict.fromkeys(source.package for source in sources))
    trees = fetch(packages, Path(cache_dir) if cache_dir else None)
    work = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    records: list[ClipRecord] = []
    for label in dict.fromkeys(source.label for source in sources):
        class_sources = [source for source in sources if source.label == label]
        picked = _pick_class(label, class_sources, trees, clips_per_class, progress)
        heldout_items = _heldout_items(picked, heldout_fraction)
        for source, item, k, crop in picked:
            split = HELDOUT if (source.name, item.name) in heldout_items else TRAIN
            file = f"{label}/{source.name}-{item.name}-{k}.wav"
            save_audio(work / file, crop.audio, SAMPLE_RATE)
            tree = trees[source.package]
            records.append(
                ClipRecord(file, label, split, tree.name, tree.version, item.source_file,
                           round(crop.start_s, 3), round(crop.content_s, 3), item.licence, item.credit)
            )  # fmt: skip

    _copy_licences(work, sources, trees)
    _write_manifest(work / MANIFEST, records)
    summary = {
        "recipe": RECIPE_VERSION,
        "settings": settings,
        "sample_rate": SAMPLE_RATE,
        "clip_seconds": 1.0,
        "counts": _counts(records),
        "packages": {name: trees[name].version for name in packages},
    }
    (work / SUMMARY).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    shutil.rmtree(out_dir, ignore_errors=True)
    work.rename(out_dir)
    return read_summary(out_dir, built=True)


def load_manifest(corpus_dir: str | Path) -> list[ClipRecord]:
    """The rows of ``corpus_dir/manifest.csv``.

    Raises:
        DemoCorpusError: the manifest is missing or lacks columns.
    """
    path = Path(corpus_dir) / MANIFEST
    if not path.is_file():
        raise DemoCorpusError(f"{path}: no manifest; build the corpus with scripts/build_demo_corpus.py")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = set(MANIFEST_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise DemoCorpusError(f"{path}: columns missing: {', '.join(sorted(missing))}")
        return [
            ClipRecord(row["file"], row["class"], row["split"], row["package"], row["version"],
                       row["source_file"], float(row["start_s"]), float(row["content_s"]),
                       row["licence"], row["credit"])
            for row in reader
        ]  # fmt: skip


def read_summary(corpus_dir: str | Path, built: bool = False) -> CorpusSummary:
    """Counts, size and package versions of a complete corpus folder."""
    corpus_dir = Path(corpus_dir)
    info = json.loads((corpus_dir / SUMMARY).read_text())
    total = sum(p.stat().st_size for p in corpus_dir.rglob("*") if p.is_file())
    return CorpusSummary(corpus_dir, info["counts"], total, info["packages"], built)


def is_complete(corpus_dir: str | Path, settings: dict) -> bool:
    """True when ``corpus_dir`` was fully built with ``settings`` and every clip is present."""
    corpus_dir = Path(corpus_dir)
    try:
        info = json.loads((corpus_dir / SUMMARY).read_text())
        records = load_manifest(corpus_dir)
    except (OSError, ValueError, DemoCorpusError):
        return False
    if info.get("recipe") != RECIPE_VERSION or info.get("settings") != settings:
        return False
    return all((corpus_dir / record.file).is_file() for record in records)


def _settings(clips_per_class: int, heldout_fraction: float, sources: tuple[Source, ...]) -> dict:
    recipe = [[s.name, s.label, s.package, s.weight, s.max_clips_per_item, s.min_content_s] for s in sources]
    return {"clips_per_class": clips_per_class, "heldout_fraction": heldout_fraction, "sources": recipe}


def _replaceable(out_dir: Path) -> bool:
    """An old or half-built corpus (or an empty folder) may be replaced; anything else may not."""
    return out_dir.is_dir() and (
        not any(out_dir.iterdir()) or (out_dir / SUMMARY).exists() or (out_dir / MANIFEST).exists()
    )


def _hash(*parts: str) -> str:
    return hashlib.sha1("|".join((ORDER_SEED, *parts)).encode()).hexdigest()


def balanced_order(items: list[SourceItem]) -> list[SourceItem]:
    """Items interleaved over their groups (first of every group, then second, ...), hash-ordered."""
    by_group: dict[str, list[SourceItem]] = defaultdict(list)
    for item in sorted(items, key=lambda i: _hash(i.source_file)):
        by_group[item.group].append(item)
    groups = sorted(by_group.values(), key=lambda members: _hash(members[0].group))
    depth = max((len(members) for members in groups), default=0)
    return [members[rank] for rank in range(depth) for members in groups if rank < len(members)]


def quotas(weights: list[float], total: int) -> list[int]:
    """``total`` split in proportion to ``weights`` (largest remainders get the leftovers)."""
    share = [total * w / sum(weights) for w in weights]
    counts = [int(s) for s in share]
    by_remainder = sorted(range(len(weights)), key=lambda i: (counts[i] - share[i], i))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _clips_of(source: Source, tree: PackageTree) -> Iterator[tuple[SourceItem, int, Crop]]:
    items = source.list_items(tree)
    names = [item.name for item in items]
    if len(set(names)) != len(names):
        raise DemoCorpusError(f"source {source.name}: item names are not unique")
    for item in balanced_order(items):
        audio, rate = item.load()
        for k, crop in enumerate(cut_clips(resample(audio, rate, SAMPLE_RATE), source.max_clips_per_item, source.min_content_s)):
            yield item, k, crop


def _pick_class(
    label: str, sources: list[Source], trees: dict[str, PackageTree], n: int, progress: bool
) -> list[tuple[Source, SourceItem, int, Crop]]:
    """``n`` clips of one class: each source's quota first, then leftovers from any source."""
    streams = [_clips_of(source, trees[source.package]) for source in sources]
    picked: list[tuple[Source, SourceItem, int, Crop]] = []
    with tqdm(total=n, desc=f"demo corpus: {label}", unit="clip", disable=not progress) as bar:
        for budget_pass in (quotas([s.weight for s in sources], n), [n] * len(sources)):
            for source, stream, budget in zip(sources, streams, budget_pass, strict=True):
                taken = sum(1 for p in picked if p[0] is source)
                while taken < budget and len(picked) < n:
                    clip = next(stream, None)
                    if clip is None:
                        break
                    picked.append((source, *clip))
                    taken += 1
                    bar.update(1)
    if not picked:
        raise DemoCorpusError(f"class {label}: no clip could be cut from its sources")
    if len(picked) < n:
        warnings.warn(f"class {label}: only {len(picked)} of {n} clips available", stacklevel=3)
    return picked


def _heldout_items(picked: list[tuple[Source, SourceItem, int, Crop]], fraction: float) -> set[tuple[str, str]]:
    """Recordings whose clips form the held-out split: about ``fraction`` of the clips, whole recordings."""
    clips_per_item: dict[tuple[str, str], int] = defaultdict(int)
    for source, item, _, _ in picked:
        clips_per_item[(source.name, item.name)] += 1
    target = max(1, round(fraction * len(picked)))
    ordered = sorted(clips_per_item, key=lambda key: _hash(*key))
    chosen: set[tuple[str, str]] = set()
    held = 0
    for key in ordered[1:]:  # the first recording (in hash order) always stays for training
        if held + clips_per_item[key] <= target:
            chosen.add(key)
            held += clips_per_item[key]
    if not chosen and len(ordered) > 1:  # every recording gives more clips than the target
        chosen.add(min(ordered, key=lambda key: clips_per_item[key]))
    return chosen


def _copy_licences(work: Path, sources: tuple[Source, ...], trees: dict[str, PackageTree]) -> None:
    for source in sources:
        tree = trees[source.package]
        folder = work / "licenses" / tree.name
        folder.mkdir(parents=True, exist_ok=True)
        for origin, name in (("usr/share/doc/" + tree.name + "/copyright", "copyright"), *source.notices):
            if tree.path(origin).is_file():
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(tree.path(origin), folder / name)


def _write_manifest(path: Path, records: list[ClipRecord]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(MANIFEST_COLUMNS)
        for record in records:
            writer.writerow(asdict(record).values())


def _counts(records: list[ClipRecord]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for record in records:
        per_split = counts.setdefault(record.label, {TRAIN: 0, HELDOUT: 0})
        per_split[record.split] += 1
    return counts
