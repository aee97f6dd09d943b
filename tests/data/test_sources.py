"""Sources: folders, the AudioSet layout, WebDataset shard specs, and the errors a user sees."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from aar.data import DataError, FileSource, ShardSource, iter_clips, open_source, split_files
from aar.data.sources import read_audioset_csv
from tests.data.conftest import tone, write_shards


def test_folder_is_recursive_and_filtered_by_extension(audio_folder):
    root, levels = audio_folder
    (root / "notes.txt").write_text("not audio")
    source = open_source(root)
    assert isinstance(source, FileSource) and source.kind == "folder"
    assert sorted(source.name(i) for i in range(len(source))) == sorted(levels)
    wav = source.read(0, 24_000)
    assert wav.shape[0] == 1 and wav.shape[1] == 36_000


def test_missing_and_empty_roots_fail_with_the_path(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        open_source(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("x")
    with pytest.raises(DataError, match=r"empty: no audio files"):
        open_source(tmp_path / "empty")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every folder")
def test_unreadable_root_is_a_clear_error(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        with pytest.raises(DataError, match="locked: permission denied"):
            open_source(locked)
    finally:
        locked.chmod(0o755)


def test_audioset_layout_skips_and_counts_missing_files(tmp_path, caplog):
    audio = tmp_path / "mp3"
    audio.mkdir()
    for ytid in ("abc", "d-e_f"):
        sf.write(audio / f"Y{ytid}.wav", tone(1.0, 16_000, 0.1), 16_000)
        (audio / f"Y{ytid}.wav").rename(audio / f"Y{ytid}.mp3")  # name as in AudioSet; content decodes by header
    csv = tmp_path / "unbalanced_train_segments.csv"
    csv.write_text(
        "# Segments csv created Sun Mar  5 10:54:31 2017\n"
        "# num_ytids=4, num_segs=4, num_unique_labels=2, num_positive_labels=5\n"
        "# YTID, start_seconds, end_seconds, positive_labels\n"
        'abc, 30.000, 40.000, "/m/09x0r,/t/dd00088"\n'
        'gone1, 0.000, 10.000, "/m/09x0r"\n'
        'd-e_f, 10.000, 20.000, "/m/04rlf"\n'
        'gone2, 0.000, 10.000, "/m/04rlf"\n'
    )
    assert read_audioset_csv(csv) == ["abc", "gone1", "d-e_f", "gone2"]
    with caplog.at_level("WARNING", logger="aar.data"):
        source = open_source(audio, audioset_csv=csv)
    assert source.kind == "audioset" and source.missing == 2
    assert [p.name for p in source.files] == ["Yabc.mp3", "Yd-e_f.mp3"]
    assert sum("2 of 4 segments" in r.message for r in caplog.records) == 1
    assert source.read(1, 24_000).shape == (1, 24_000)


def test_audioset_with_no_files_is_an_error(tmp_path):
    (tmp_path / "mp3").mkdir()
    csv = tmp_path / "seg.csv"
    csv.write_text("# a\n# b\n# YTID, start_seconds, end_seconds, positive_labels\nxyz, 0, 10, \"/m/1\"\n")
    with pytest.raises(DataError, match="none of the 1 segments"):
        open_source(tmp_path / "mp3", audioset_csv=csv)
    with pytest.raises(DataError, match="CSV not found"):
        open_source(tmp_path / "mp3", audioset_csv=tmp_path / "missing.csv")


def test_shard_specs(tmp_path):
    write_shards(tmp_path / "sh", n_shards=3, per_shard=2)
    source = open_source(str(tmp_path / "sh" / "shard-{000..002}.tar"))
    assert isinstance(source, ShardSource) and len(source) == 3
    assert open_source(str(tmp_path / "sh" / "shard-001.tar")).urls == [str(tmp_path / "sh" / "shard-001.tar")]
    with pytest.raises(DataError, match="shard-008.tar: WebDataset shard not found"):
        open_source(str(tmp_path / "sh" / "shard-{008..009}.tar"))


def test_validation_split_is_fixed_disjoint_and_order_independent(audio_folder):
    root, levels = audio_folder
    source = open_source(root)
    train, val = split_files(source, 0.34, 10, seed=3)
    assert len(val) == 2 and len(train) == 4 and not set(train) & set(val)
    again_train, again_val = split_files(source, 0.34, 10, seed=3)
    assert (again_val == val).all() and (again_train == train).all()
    shuffled = FileSource(source.root, list(reversed(source.files)))
    _, val_rev = split_files(shuffled, 0.34, 10, seed=3)
    assert {shuffled.name(i) for i in val_rev} == {source.name(i) for i in val}
    assert len(split_files(source, 0.34, 1, seed=3)[1]) == 1  # capped by max clips
    assert len(split_files(source, 0.0, 10, seed=3)[1]) == 0


def test_iter_clips_reads_everything_and_records_failures(tmp_path):
    write_shards(tmp_path / "sh", n_shards=2, per_shard=3)
    source = open_source(str(tmp_path / "sh" / "shard-{000..001}.tar"))
    clips = list(iter_clips(source, 24_000))
    assert [k for k, _ in clips] == [f"s{s}_{j:03d}" for s in range(2) for j in range(3)]
    assert all(w.shape == (1, int(1.2 * 24_000)) for _, w in clips)
    folder = tmp_path / "f"
    folder.mkdir()
    sf.write(folder / "good.wav", tone(0.5, 24_000, 0.2), 24_000)
    (folder / "bad.flac").write_bytes(b"fLaC not really")
    from aar.data import FailureLog

    failures = FailureLog()
    names = [n for n, _ in iter_clips(open_source(folder), 24_000, failures)]
    assert names == ["good.wav"] and list(failures.reasons) == ["bad.flac"]
    assert np.isclose(float(dict(iter_clips(open_source(folder)))["good.wav"].mean()), 0.2, atol=0.01)
