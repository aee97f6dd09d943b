"""Run by ``torchrun`` from test_ddp.py: trains the small tokenizer config and saves this rank's
codebooks and weights so the test can compare the ranks."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from aar.train import train_tokenizer  # noqa: E402
from tests.train.conftest import small_config  # noqa: E402


def main(data: str, out: str):
    torch.set_num_threads(1)
    cfg = small_config(max_steps=3, val_every=3)
    result = train_tokenizer(cfg, data, out)
    rank = int(os.environ["RANK"])
    state = {k: v for k, v in result.model.state_dict().items()}
    torch.save({"state": state, "summary": result.summary}, Path(out) / f"rank{rank}.pt")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
