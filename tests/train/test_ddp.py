"""Two gloo processes under torchrun: DDP keeps weights equal and the quantizer keeps the EMA
codebooks (k-means init, updates, re-seeded codes) identical on both ranks, although each rank
reads different audio."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from tests.train.conftest import write_sine_folder

WORKER = Path(__file__).with_name("ddp_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_run_keeps_codebooks_identical(tmp_path):
    data = write_sine_folder(tmp_path / "data", n=7)
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
        str(WORKER), str(data), str(out),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]
    a, b = ranks[0]["state"], ranks[1]["state"]
    codebook_keys = [k for k in a if ".codebooks." in k]
    assert len(codebook_keys) == 4 * 16
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs between ranks"
    assert all(a[f"quantizer.codebooks.{k}.initialized"].item() == 1 for k in range(16))
    assert ranks[0]["summary"]["world_size"] == 2
    assert ranks[0]["summary"]["samples"] == 3 * 2 * 2  # steps x batch x processes
    assert (out / "model" / "model.safetensors").is_file()
    assert [v["step"] for v in ranks[0]["summary"]["validation"]] == [0, 3]  # validated by rank 0
    assert "Warning" not in proc.stderr, proc.stderr[-2000:]
