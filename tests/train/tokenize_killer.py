"""Run ``aar tokenize-dataset`` (argv after the first three arguments) and SIGKILL this process
at a chosen point of its writing, as a crash or a scheduler would: used by
test_tokenize_dataset.py, plainly or under torchrun (only on rank ``RANK``).

    tokenize_killer.py POINT N RANK -- <tokenize-dataset arguments>

POINT: ``mid-npy`` (the N-th array file half-written to its temporary file), ``before-record``
(the N-th shard's data written, its record not), ``before-index`` (every shard and the
tokenizer written, the index not).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import aar.data.token_cache as store  # noqa: E402
import aar.train.tokenize as driver  # noqa: E402
from aar.checkpoint import atomic_path  # noqa: E402
from aar.cli.main import main  # noqa: E402


def die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def arm(point: str, n: int) -> None:
    calls = [0]
    if point == "mid-npy":
        real_save = store.save_npy

        def save_npy(path, array):
            calls[0] += 1
            if calls[0] == n:
                with atomic_path(path) as tmp:
                    data = array.tobytes()
                    tmp.write_bytes(data[: len(data) // 2])
                    die()
            real_save(path, array)

        store.save_npy = save_npy
    elif point == "before-record":
        real_write = store.atomic_write_text

        def atomic_write_text(text, path):
            if str(path).endswith(".done.json"):
                calls[0] += 1
                if calls[0] == n:
                    die()
            return real_write(text, path)

        store.atomic_write_text = atomic_write_text
    elif point == "before-index":
        driver.write_index = lambda out, meta: die()
    else:
        raise SystemExit(f"unknown kill point {point!r}")


if __name__ == "__main__":
    point, count, rank = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if int(os.environ.get("RANK", "0")) == rank:
        arm(point, count)
    sys.exit(main(sys.argv[5:] if sys.argv[4] == "--" else sys.argv[4:]))
