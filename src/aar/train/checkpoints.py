"""Training checkpoints: atomic writes, keep-last-K rotation, and the RNG states of a process.

Files are ``RUN_DIR/checkpoints/step_<8 digits>.pt``, written with
:func:`aar.checkpoint.atomic_torch_save` (temp file + fsync + rename) and read with
``weights_only=True``: everything stored is tensors, numbers, strings, lists and dicts.
"""

from __future__ import annotations

import logging
import random
import re
from pathlib import Path

import numpy as np
import torch

from aar.checkpoint import CheckpointError, atomic_torch_save, load_torch_file

log = logging.getLogger("aar.train")

_NAME = re.compile(r"^step_(\d{8,})\.pt$")


def capture_rng() -> dict:
    """The random states of Python, NumPy, torch (CPU) and every CUDA device."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict):
    """Inverse of :func:`capture_rng`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class CheckpointManager:
    """Writes ``step_N.pt`` files into ``directory`` and keeps the newest ``keep_last``."""

    def __init__(self, directory: str | Path, keep_last: int = 3):
        if keep_last < 1:
            raise ValueError(f"keep_last must be >= 1, got {keep_last}")
        self.directory = Path(directory)
        self.keep_last = keep_last

    def path(self, step: int) -> Path:
        return self.directory / f"step_{step:08d}.pt"

    def all(self) -> list[tuple[int, Path]]:
        """(step, path) of every checkpoint, oldest first."""
        if not self.directory.is_dir():
            return []
        found = []
        for p in self.directory.iterdir():
            m = _NAME.match(p.name)
            if m:
                found.append((int(m.group(1)), p))
        return sorted(found)

    def remove_partial(self) -> list[Path]:
        """Delete the temporary files of checkpoint writes that never finished (a process killed
        mid-write leaves its ``.step_N.pt.*.tmp``); call it only while holding the run's lock."""
        if not self.directory.is_dir():
            return []
        partial = [p for p in self.directory.iterdir() if p.name.startswith(".step_") and p.name.endswith(".tmp")]
        for p in partial:
            p.unlink(missing_ok=True)
            log.warning("removed the partial checkpoint %s of an interrupted write", p)
        return partial

    def latest(self) -> Path | None:
        found = self.all()
        return found[-1][1] if found else None

    def save(self, state: dict, step: int) -> Path:
        path = atomic_torch_save(state, self.path(step))
        for _, old in self.all()[: -self.keep_last]:
            old.unlink(missing_ok=True)
        return path

    @staticmethod
    def load(path: str | Path) -> dict:
        state = load_torch_file(path)
        if not isinstance(state, dict) or "step" not in state:
            raise CheckpointError(f"{path}: not a training checkpoint of this project")
        return state
