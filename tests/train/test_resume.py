"""Exact resume: N steps, a checkpoint, N more steps after a resume == 2N uninterrupted steps."""

from __future__ import annotations

import shutil

import pytest
import torch

from aar.checkpoint import CheckpointError
from aar.train import train_tokenizer
from aar.train.checkpoints import CheckpointManager
from tests.train.conftest import small_config, write_sine_folder

N = 3


def test_resumed_run_matches_uninterrupted_run(tmp_path):
    data = write_sine_folder(tmp_path / "data")
    full_dir, resumed_dir = tmp_path / "full", tmp_path / "resumed"
    cfg = small_config(max_steps=2 * N, checkpoint_every=N, keep_checkpoints=5, val_every=N)
    cfg.data.num_workers = 1
    full = train_tokenizer(cfg, data, full_dir)

    # the interrupted run: what the first run had written after N steps, then --resume
    (resumed_dir / "checkpoints").mkdir(parents=True)
    shutil.copy(full_dir / "checkpoints" / f"step_{N:08d}.pt", resumed_dir / "checkpoints")
    cfg.data.num_workers = 0  # the file stream does not depend on the worker count
    resumed = train_tokenizer(cfg, data, resumed_dir, resume=True)

    assert resumed.summary["start_step"] == N and full.summary["start_step"] == 0
    a = CheckpointManager.load(full_dir / "checkpoints" / f"step_{2 * N:08d}.pt")
    b = CheckpointManager.load(resumed_dir / "checkpoints" / f"step_{2 * N:08d}.pt")
    for part in ("sat", "discriminator"):
        for key, value in a["task"][part].items():
            torch.testing.assert_close(b["task"][part][key], value, rtol=1e-5, atol=1e-6, msg=f"{part}.{key}")
    exp_a, exp_b = a["task"]["optimizer_g"]["state"], b["task"]["optimizer_g"]["state"]
    for i in exp_a:
        torch.testing.assert_close(exp_b[i]["exp_avg_sq"], exp_a[i]["exp_avg_sq"], rtol=1e-4, atol=1e-9)
    assert a["ranks"][0]["data"]["position"] == b["ranks"][0]["data"]["position"]
    # the validation history (step 0 and N from the first run) travels with the checkpoint
    assert [v["step"] for v in resumed.summary["validation"]] == [0, N, 2 * N]
    assert resumed.summary["validation"][-1] == pytest.approx(full.summary["validation"][-1], rel=1e-4)


def test_existing_run_needs_resume_and_rotation_keeps_the_last(tmp_path):
    data = write_sine_folder(tmp_path / "data", n=3)
    cfg = small_config(max_steps=3, checkpoint_every=1, keep_checkpoints=2)
    cfg.data.val_fraction = 0.0
    train_tokenizer(cfg, data, tmp_path / "run")
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert names == ["step_00000002.pt", "step_00000003.pt"]  # no temp files left behind
    with pytest.raises(CheckpointError, match="already holds checkpoints.*--resume"):
        train_tokenizer(cfg, data, tmp_path / "run")
    done = train_tokenizer(cfg, data, tmp_path / "run", resume=True)  # nothing left to do
    assert done.summary["start_step"] == 3 and done.summary["samples"] == 0
