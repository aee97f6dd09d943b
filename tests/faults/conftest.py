"""Fixtures of the fault-injection suite: tiny models and data, and a runner for ``aar`` in a child
process that can be killed at chosen points (:mod:`tests.faults.worker`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.train.conftest import one_thread, small_config, write_sine_folder  # noqa: F401  (fixture re-exported)
from tests.transformer.conftest import label_cache, labelled_audio, random_codebook_sat, sat_dir  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


def run_worker(point: str, step: int, args: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    """``aar ARGS`` in a child process that dies at ``point`` of ``step`` (see tests.faults.worker)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": path}
    env.pop("AAR_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "tests.faults.worker", point, str(step), *map(str, args)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )


def tokenizer_config_file(folder: Path, **train) -> Path:
    """The engine tests' tiny tokenizer config as a YAML file (checkpoints every step)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tok.yaml"
    cfg = small_config(**{"max_steps": 4, "checkpoint_every": 1, "keep_checkpoints": 2, **train})
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    return path


def aar_config_file(folder: Path, **train) -> Path:
    """A two-block AAR on the tiny tokenizer, checkpoints every step."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "aar.yaml"
    path.write_text(yaml.safe_dump({
        "model": {"depth": 2, "width": 64, "num_heads": 2, "cond_drop_rate": 0.0, "drop_path_rate": 0.0},
        "data": {"batch_size": 2, "val_fraction": 0.0},
        "optim": {"lr": 3e-3, "warmup_steps": 2},
        "train": {"max_steps": 4, "log_every": 0, "val_every": 0, "checkpoint_every": 1, "keep_checkpoints": 2,
                  "device": "cpu", **train},
        "sample": {"clips": 0},
    }))
    return path


def final_state(run: Path, step: int) -> dict:
    """The model tensors of the run's checkpoint at ``step``."""
    from aar.train.checkpoints import CheckpointManager

    return CheckpointManager.load(run / "checkpoints" / f"step_{step:08d}.pt")["task"]


def assert_bitwise_equal(a, b, where: str = "") -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_bitwise_equal(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_bitwise_equal(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


@pytest.fixture(scope="session")
def sine_data(tmp_path_factory) -> Path:
    return write_sine_folder(tmp_path_factory.mktemp("faults") / "data", n=4)
