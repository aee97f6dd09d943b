"""``aar tokenize-dataset`` at scale: one process or two gloo processes under torchrun write the
same cache byte for byte; killed (SIGKILL) at several points, the same command finishes it
identically and the unfinished cache never loads; bad clips are skipped, counted and listed;
separate jobs are finished by ``--merge``; train-aar reads the result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from aar.audio import load_audio
from aar.checkpoint import CheckpointError
from aar.cli.main import main
from aar.tokenizer import SAT
from aar.transformer.token_cache import TokenCache
from tests.conditioning.conftest import tiny_clap_dir  # noqa: F401  (fixture)
from tests.conditioning.tiny_clap import TINY_CLAP_DIM
from tests.transformer.conftest import sat_dir  # noqa: F401  (fixture: the tiny SAT with random codebooks)

KILLER = Path(__file__).with_name("tokenize_killer.py")
SR = 24_000
# sorted: cls0/a cls0/b | cls1/c cls1/d | cls1/x_bad cls1/y_nan (a shard of bad clips only) | cls2/e cls2/f
CLIPS = {"cls0/a.wav": 2.3, "cls0/b.wav": 0.6, "cls1/c.wav": 1.0, "cls1/d.wav": 3.1, "cls2/e.flac": 1.5, "cls2/f.wav": 1.2}
WINDOWS = [3, 4, 0, 2]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tokdata") / "data"
    rng = np.random.default_rng(0)
    for name, seconds in CLIPS.items():
        t = np.arange(int(seconds * SR)) / SR
        wav = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 2000) * t) + 0.05 * rng.standard_normal(t.size)
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / name, wav.astype(np.float32), SR)
    (root / "cls1" / "x_bad.wav").write_bytes(b"RIFF, but not audio at all" * 10)
    nan = np.full(SR // 2, 0.1, np.float32)
    nan[100] = np.nan
    sf.write(root / "cls1" / "y_nan.wav", nan, SR, subtype="FLOAT")
    return root


def args(sat_dir, data, out, *extra):
    return ["tokenize-dataset", "--tokenizer", str(sat_dir), "--data", str(data), "--out", str(out),
            "--shard-clips", "2", "--batch-size", "3", "--device", "cpu", *extra]


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones included) and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def torchrun(*argv, nproc=2):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), *argv]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)


@pytest.fixture(scope="module")
def label_reference(tmp_path_factory, sat_dir, data):
    out = tmp_path_factory.mktemp("tokref") / "cache"
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as the subprocesses run (OMP_NUM_THREADS=1)
    try:
        assert main(args(sat_dir, data, out, "--condition", "label")) == 0
    finally:
        torch.set_num_threads(before)
    return out


def test_one_and_two_gloo_processes_write_the_same_cache(tmp_path, sat_dir, data, tiny_clap_dir, capsys):
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(args(sat_dir, data, one, "--clap", str(tiny_clap_dir))) == 0
    printed = capsys.readouterr().out
    assert "2 undecodable or non-finite file(s) skipped" in printed and "x_bad.wav" in printed
    proc = torchrun("-m", "aar", *args(sat_dir, data, two, "--clap", str(tiny_clap_dir)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = tree(one), tree(two)
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name] == b[name], f"{name} differs between 1 and 2 processes"
    meta = json.loads(a["cache.json"])
    assert [s["windows"] for s in meta["shards"]] == WINDOWS and meta["num_windows"] == 9
    assert meta["num_clips"] == 6 and meta["condition"] == "clap" and meta["cond_dim"] == TINY_CLAP_DIM
    assert len(meta["undecodable"]) == 2
    assert "x_bad.wav" in meta["undecodable"][0] and "y_nan.wav" in meta["undecodable"][1]
    cache = TokenCache(two)
    assert cache.cond[0].dtype == np.float16 and cache.names[:4] == ["cls0/a.wav#0", "cls0/a.wav#1", "cls0/b.wav#0", "cls1/c.wav#0"]
    batch = cache.batch([0, 1, 2])
    assert torch.equal(batch["cond"][0], batch["cond"][1]) and not torch.equal(batch["cond"][0], batch["cond"][2])


def test_the_cache_holds_each_windows_codes_and_class(label_reference, sat_dir, data):
    cache = TokenCache(label_reference)
    sat = SAT.from_pretrained(sat_dir)
    d = cache.names.index("cls1/d.wav#2")
    wav = load_audio(data / "cls1" / "d.wav")[:, 2 * SR : 3 * SR]
    assert torch.equal(cache[d]["codes"], torch.cat(sat.encode(wav[None]), 1)[0])
    assert cache.class_names == ["cls0", "cls1", "cls2"] and int(cache[d]["cond"]) == 1
    assert [s["windows"] for s in cache.meta["shards"]] == WINDOWS and len(cache.shards) == 3


def kill(sat_dir, data, out, point, n, rank=0, nproc=1):
    argv = [str(KILLER), point, str(n), str(rank), "--", *args(sat_dir, data, out, "--condition", "label")]
    if nproc > 1:
        proc = torchrun(*argv, nproc=nproc)
        assert proc.returncode != 0
    else:
        proc = subprocess.run([sys.executable, *argv], env={**os.environ, "OMP_NUM_THREADS": "1"},
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == -9, proc.stderr[-3000:]
    with pytest.raises(CheckpointError, match="incomplete token cache .*rerun the same"):
        TokenCache(out)


def test_killed_runs_finish_into_the_same_cache(tmp_path, sat_dir, data, label_reference, capsys):
    out = tmp_path / "cache"
    kill(sat_dir, data, out, "mid-npy", 3)  # shard 0 done (codes, cond); shard 1's codes half-written
    assert [p.name for p in out.glob(".shard-00001.codes.npy.*.tmp")]
    assert (out / "shard-00000.done.json").is_file() and not (out / "shard-00001.done.json").exists()
    finished = (out / "shard-00000.codes.npy").stat()
    kill(sat_dir, data, out, "before-record", 1)  # shard 1 written again, its record not
    assert (out / "shard-00001.codes.npy").is_file() and not (out / "shard-00001.done.json").exists()
    assert main(args(sat_dir, data, out, "--condition", "label", "--batch-size", "2")) == 1
    assert "other settings (batch_size 3 -> 2)" in capsys.readouterr().err
    kill(sat_dir, data, out, "before-index", 1)  # every shard and the tokenizer, no index
    assert main(args(sat_dir, data, out, "--condition", "label")) == 0
    again = (out / "shard-00000.codes.npy").stat()
    assert (again.st_ino, again.st_mtime_ns) == (finished.st_ino, finished.st_mtime_ns)  # not redone
    assert tree(out) == tree(label_reference)
    assert main(args(sat_dir, data, out, "--condition", "label")) == 1
    assert "already holds a complete token cache" in capsys.readouterr().err


def test_a_two_process_run_killed_mid_write_finishes_with_one(tmp_path, sat_dir, data, label_reference):
    out = tmp_path / "cache"
    kill(sat_dir, data, out, "mid-npy", 2, rank=1, nproc=2)  # rank 1's first shard half-written
    assert main(args(sat_dir, data, out, "--condition", "label")) == 0
    assert tree(out) == tree(label_reference)


def test_separate_jobs_then_merge(tmp_path, sat_dir, data, label_reference, monkeypatch, capsys):
    out = tmp_path / "cache"
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert main(args(sat_dir, data, out, "--condition", "label")) == 0
    assert "run the same command with --merge" in capsys.readouterr().out
    assert sorted(p.name for p in out.glob("*.done.json")) == ["shard-00001.done.json", "shard-00003.done.json"]
    assert main(["tokenize-dataset", "--tokenizer", str(sat_dir), "--out", str(out), "--merge"]) == 1
    assert "2 of 4 shard(s) not finished (shard-00000, shard-00002)" in capsys.readouterr().err
    monkeypatch.setenv("RANK", "0")
    assert main(args(sat_dir, data, out, "--condition", "label")) == 0
    with pytest.raises(CheckpointError, match="incomplete"):
        TokenCache(out)
    assert main(["tokenize-dataset", "--tokenizer", str(sat_dir), "--out", str(out), "--merge"]) == 0
    assert tree(out) == tree(label_reference)


def test_train_aar_reads_a_cache_of_several_processes(tmp_path, label_reference):
    from tests.transformer.test_training import tiny_config
    from aar.transformer.training import train_aar

    cfg = tiny_config(max_steps=2, val_every=2)
    cfg.data.val_fraction, cfg.data.batch_size, cfg.data.block_shards = 0.25, 2, 1
    summary = train_aar(cfg, label_reference, tmp_path / "run").summary
    assert summary["validation"][-1]["step"] == 2 and summary["validation"][-1]["loss"] > 0


def test_decode_threads_do_not_change_the_cache(tmp_path, sat_dir, data, label_reference):
    for threads in ("1", "3"):
        assert main(args(sat_dir, data, tmp_path / threads, "--condition", "label", "--decode-threads", threads)) == 0
        assert tree(tmp_path / threads) == tree(label_reference)


def test_webdataset_shards_one_cache_shard_each(tmp_path, sat_dir, monkeypatch, capsys):
    from tests.data.conftest import write_shards

    write_shards(tmp_path / "wds", n_shards=3, per_shard=2, sr=SR, seconds=1.2)
    (tmp_path / "wds" / "shard-003.tar").write_bytes(b"not a tar file" * 100)
    spec = str(tmp_path / "wds" / "shard-{000..003}.tar")
    assert main(args(sat_dir, spec, tmp_path / "one")) == 0
    meta = json.loads((tmp_path / "one" / "cache.json").read_text())
    assert [s["windows"] for s in meta["shards"]] == [2, 2, 2, 0] and meta["num_clips"] == 6
    assert len(meta["undecodable"]) == 1 and "shard-003.tar" in meta["undecodable"][0]
    assert TokenCache(tmp_path / "one").names[:3] == ["s0_000#0", "s0_001#0", "s1_000#0"]
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.setenv("WORLD_SIZE", "3")
    for rank in ("2", "0", "1"):
        monkeypatch.setenv("RANK", rank)
        assert main(args(sat_dir, spec, tmp_path / "three")) == 0
    assert main(["tokenize-dataset", "--tokenizer", str(sat_dir), "--out", str(tmp_path / "three"), "--merge"]) == 0
    assert tree(tmp_path / "three") == tree(tmp_path / "one")
