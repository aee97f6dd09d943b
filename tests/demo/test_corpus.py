"""Building the demo corpus: layout, manifest, split, determinism, reuse, and the real recipe.

The build tests run on small generated "packages" in temporary folders (no apt); the last
tests read the real Debian packages and skip when they are neither installed nor cached.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from aar.audio.io import resample
from aar.demo.clips import cut_clips
from aar.demo.corpus import (
    HELDOUT,
    MANIFEST_COLUMNS,
    TRAIN,
    DemoCorpusError,
    balanced_order,
    build_corpus,
    load_manifest,
    quotas,
)
from aar.demo.debian import PackageTree, is_forbidden, local_tree
from aar.demo.sources import SOURCES, Source, SourceItem, _read_file


def make_package(root: Path, name: str, kind: str, count: int, seconds: float, rate: int) -> PackageTree:
    """A fake package folder with ``count`` generated recordings and a copyright file."""
    rng = np.random.default_rng(abs(hash((name, kind))) % 2**32)
    folder = root / name / "usr/share/sounds"
    folder.mkdir(parents=True)
    t = np.arange(int(seconds * rate)) / rate
    for i in range(count):
        if kind == "tone":
            audio = 0.3 * np.sin(2 * np.pi * (200 + 50 * i) * t)
        elif kind == "noise":
            audio = 0.2 * rng.standard_normal(t.size) * (np.sin(2 * np.pi * 3 * t) > -0.5)
        else:
            audio = 0.3 * np.sin(2 * np.pi * (300 + 400 * t) * t)
        audio = np.concatenate([np.zeros(rate // 10), audio, np.zeros(rate // 10)])
        sf.write(folder / f"{kind}{i:02d}.wav", audio, rate, subtype="PCM_16")
    doc = root / name / "usr/share/doc" / name
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(f"{name}: test licence\n")
    return PackageTree(name, "1.0-1", root / name)


def items_of(tree: PackageTree) -> list[SourceItem]:
    return [
        SourceItem(
            p.stem, p.relative_to(tree.root).as_posix(), p.stem[:-1], "TEST-1.0", f"credit {p.stem}", _read_file(p)
        )
        for p in sorted(tree.path("usr/share/sounds").glob("*.wav"))
    ]


@pytest.fixture
def fake(tmp_path):
    """Fake packages, a recipe over them and a fetcher that counts its calls."""
    root = tmp_path / "packages"
    trees = {
        "pkg-tones": make_package(root, "pkg-tones", "tone", 6, 1.6, 44100),
        "pkg-few-tones": make_package(root, "pkg-few-tones", "tone", 1, 0.8, 16000),
        "pkg-noise": make_package(root, "pkg-noise", "noise", 4, 3.2, 22050),
        "pkg-chirps": make_package(root, "pkg-chirps", "chirp", 8, 1.2, 24000),
    }
    sources = (
        Source("few", "tones", "pkg-few-tones", 0.5, 1, items_of),  # can give 1 clip, not its 5
        Source("tones", "tones", "pkg-tones", 0.5, 1, items_of),
        Source("noise", "noise", "pkg-noise", 1.0, 3, items_of),
        Source("chirps", "chirps", "pkg-chirps", 1.0, 1, items_of),
    )
    calls = []

    def fetch(names, cache_dir):
        calls.append(list(names))
        return {name: trees[name] for name in names}

    return sources, fetch, calls


def build(out, fake, **kwargs):
    sources, fetch, _ = fake
    return build_corpus(out, clips_per_class=kwargs.pop("n", 5), sources=sources, fetch=fetch, progress=False, **kwargs)


def test_build_writes_clips_manifest_and_licences(tmp_path, fake):
    summary = build(tmp_path / "corpus", fake)
    out = tmp_path / "corpus"
    assert summary.built
    # noise recordings give up to 3 clips each and a recording is never split: 2 held out
    assert summary.counts == {
        "tones": {TRAIN: 4, HELDOUT: 1},
        "noise": {TRAIN: 3, HELDOUT: 2},
        "chirps": {TRAIN: 4, HELDOUT: 1},
    }
    records = load_manifest(out)
    assert len(records) == 15
    with (out / "manifest.csv").open() as handle:
        assert tuple(next(csv.reader(handle))) == MANIFEST_COLUMNS
    for record in records:
        info = sf.info(str(out / record.file))
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (24000, 1, 24000, "PCM_16")
        assert record.file.startswith(f"{record.label}/") and record.version == "1.0-1"
        assert record.licence == "TEST-1.0" and record.credit.startswith("credit ")
        assert (tmp_path / "packages" / record.package / record.source_file).is_file()
    # the short source gives what it has, the other source of the class fills in
    tones = [r for r in records if r.label == "tones"]
    assert sum(r.package == "pkg-few-tones" for r in tones) == 1 and len(tones) == 5
    # a long noise recording gives several consecutive windows
    by_file: dict[str, list[float]] = {}
    for r in records:
        if r.label == "noise":
            by_file.setdefault(r.source_file, []).append(r.start_s)
    starts = sorted(max(by_file.values(), key=len))
    assert len(starts) >= 2 and starts[1] - starts[0] == pytest.approx(1.0)
    assert (out / "licenses/pkg-noise/copyright").read_text() == "pkg-noise: test licence\n"
    info = json.loads((out / "corpus.json").read_text())
    assert info["packages"] == {
        "pkg-few-tones": "1.0-1",
        "pkg-tones": "1.0-1",
        "pkg-noise": "1.0-1",
        "pkg-chirps": "1.0-1",
    }
    assert summary.total_bytes < 20 * 1024 * 1024


def test_heldout_split_never_shares_a_recording_with_training(tmp_path, fake):
    records = load_manifest(build(tmp_path / "corpus", fake, n=7, heldout_fraction=0.3).out_dir)
    for label in ("tones", "noise", "chirps"):
        mine = [r for r in records if r.label == label]
        held = {r.source_file for r in mine if r.split == HELDOUT}
        train = {r.source_file for r in mine if r.split == TRAIN}
        assert held and train and not held & train
        assert 1 <= sum(r.split == HELDOUT for r in mine) <= 3


def test_a_class_short_of_recordings_warns(tmp_path, fake):
    with pytest.warns(UserWarning, match="class tones: only 7 of 8 clips"):
        summary = build(tmp_path / "corpus", fake, n=8)
    assert sum(summary.counts["tones"].values()) == 7 and sum(summary.counts["noise"].values()) == 8


def test_build_is_deterministic(tmp_path, fake):
    a = build(tmp_path / "a", fake, n=6).out_dir
    b = build(tmp_path / "b", fake, n=6).out_dir
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_complete_corpus_is_reused_and_stale_one_rebuilt(tmp_path, fake):
    out = tmp_path / "corpus"
    build(out, fake)
    _, _, calls = fake
    stamp = (out / "manifest.csv").stat().st_mtime_ns
    again = build(out, fake)
    assert not again.built and len(calls) == 1
    assert (out / "manifest.csv").stat().st_mtime_ns == stamp
    assert build(out, fake, n=4).built  # other settings: rebuilt in place
    assert len(load_manifest(out)) == 12
    next(out.glob("noise/*.wav")).unlink()  # damaged: rebuilt
    assert build(out, fake, n=4).built
    assert not (tmp_path / "corpus.partial").exists()


def test_min_content_s_keeps_padded_clips_out_and_is_part_of_the_recipe(tmp_path, fake):
    sources, fetch, calls = fake
    out = tmp_path / "corpus"
    build(out, fake)
    assert any(r.package == "pkg-few-tones" and r.content_s < 1.0 for r in load_manifest(out))
    strict = tuple(dataclasses.replace(s, min_content_s=1.0) if s.name == "few" else s for s in sources)
    summary = build_corpus(out, clips_per_class=5, sources=strict, fetch=fetch, progress=False)
    assert summary.built and len(calls) == 2  # another recipe: rebuilt, not reused
    tones = [r for r in load_manifest(out) if r.label == "tones"]
    assert len(tones) == 5 and all(r.package == "pkg-tones" and r.content_s == 1.0 for r in tones)
    settings = json.loads((out / "corpus.json").read_text())["settings"]["sources"]
    assert [row[-1] for row in settings] == [1.0, 0.5, 0.5, 0.5]


def test_refuses_to_overwrite_a_folder_that_is_not_a_corpus(tmp_path, fake):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.txt").write_text("do not delete")
    with pytest.raises(DemoCorpusError, match="precious exists and is not a demo corpus"):
        build(out, fake)
    assert (out / "thesis.txt").exists()


def test_bad_settings_and_missing_manifest_are_reported(tmp_path, fake):
    with pytest.raises(DemoCorpusError, match="clips_per_class"):
        build(tmp_path / "x", fake, n=0)
    with pytest.raises(DemoCorpusError, match="heldout_fraction"):
        build(tmp_path / "x", fake, heldout_fraction=1.0)
    with pytest.raises(DemoCorpusError, match="manifest"):
        load_manifest(tmp_path)


def test_quotas_and_balanced_order():
    assert quotas([0.5, 0.35, 0.15], 120) == [60, 42, 18]
    assert sum(quotas([1, 1, 1], 10)) == 10
    items = [SourceItem(f"{g}{i}", f"{g}/{i}", g, "", "", lambda: None) for g in "abc" for i in range(3)]
    order = balanced_order(items)
    assert sorted(i.name for i in order) == sorted(i.name for i in items)
    assert {i.group for i in order[:3]} == {"a", "b", "c"}  # one of each group before any repeat


def test_real_recipe_is_three_classes_of_allowed_packages():
    labels = {source.label for source in SOURCES}
    assert labels == {"speech", "music", "environment"}
    assert not [source.package for source in SOURCES if is_forbidden(source.package)]
    assert is_forbidden("asterisk-core-sounds-en-wav") and is_forbidden("fb-music-high")
    for label in labels:
        assert sum(source.weight for source in SOURCES if source.label == label) == pytest.approx(1.0)


@pytest.mark.parametrize("source", SOURCES, ids=[source.name for source in SOURCES])
def test_real_source_gives_licensed_clips(source):
    tree = local_tree(source.package)
    if tree is None:
        pytest.skip(
            f"Debian package {source.package} neither installed nor in the cache "
            "(scripts/build_demo_corpus.py fetches it)"
        )
    items = source.list_items(tree)
    assert items
    assert all(item.licence and item.credit for item in items)
    first = balanced_order(items)[:3]
    clips = [
        clip
        for item in first
        for clip in cut_clips(resample(*item.load(), 24000), source.max_clips_per_item, source.min_content_s)
    ]
    assert clips and all(clip.audio.shape == (24000,) for clip in clips)
    assert all(clip.content_s >= min(source.min_content_s, 1.0) - 1e-6 for clip in clips)
