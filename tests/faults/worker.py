"""Run ``aar ARGS`` in this process and kill it at a chosen point (fault injection).

    python -m tests.faults.worker POINT STEP aar-args...

POINT is where the process dies while training toward, or saving, step STEP (1-based):

- ``none``: never (the uninterrupted reference run);
- ``step``: SIGKILL inside the optimiser step of STEP, before the update;
- ``write``: SIGKILL half-way through writing checkpoint STEP (a partial temporary file stays);
- ``rename``: SIGKILL with checkpoint STEP written and synced but not yet renamed into place;
- ``renamed``: SIGKILL just after the rename, before older checkpoints are rotated out;
- ``sigterm`` / ``sigint``: the signal is sent to this process during the optimiser step of STEP
  (as a scheduler or Ctrl-C would), which the run must turn into a checkpoint and a clean exit.

One intra-op thread, so that runs compare bitwise.
"""

from __future__ import annotations

import io
import os
import signal
import sys
from pathlib import Path

import torch


def _kill(sig: int = signal.SIGKILL) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), sig)


def install(point: str, step: int) -> None:
    import aar.train.checkpoints as checkpoints
    from aar.checkpoint import atomic_path
    from aar.train.optim import Optimization

    target = f"step_{step:08d}.pt"
    if point in ("step", "sigterm", "sigint"):
        sig = {"step": signal.SIGKILL, "sigterm": signal.SIGTERM, "sigint": signal.SIGINT}[point]
        original_step = Optimization.step
        sent = []

        def step_then_maybe_die(self, global_step, skip=False):
            if global_step + 1 == step and not sent:  # once (the tokenizer has two optimisers)
                sent.append(sig)
                _kill(sig)
            return original_step(self, global_step, skip)

        Optimization.step = step_then_maybe_die
    elif point == "write":
        original_save = checkpoints.atomic_torch_save

        def half_written(obj, path):
            if Path(path).name != target:
                return original_save(obj, path)
            buffer = io.BytesIO()
            torch.save(obj, buffer)
            data = buffer.getvalue()
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as fh:
                    fh.write(data[: len(data) // 2])
                    fh.flush()
                    os.fsync(fh.fileno())
                _kill()

        checkpoints.atomic_torch_save = half_written
    elif point in ("rename", "renamed"):
        original_replace = os.replace

        def replace(src, dst, *args, **kwargs):
            if Path(dst).name == target and point == "rename":
                _kill()
            original_replace(src, dst, *args, **kwargs)
            if Path(dst).name == target:
                _kill()

        os.replace = replace
    elif point != "none":
        raise SystemExit(f"unknown fault point {point!r}")


def main(argv: list[str]) -> int:
    point, step, args = argv[0], int(argv[1]), argv[2:]
    torch.set_num_threads(1)
    install(point, step)
    from aar.cli.main import main as aar_main

    return aar_main(args)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
