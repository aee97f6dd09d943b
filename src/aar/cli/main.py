"""Entry point of the ``aar`` command.

Each command module exposes ``register(subparsers)``, which adds its sub-parser and sets
``func`` (called with the parsed namespace, returns an exit code). Errors a user can fix
(:class:`CLIError`, :class:`aar.audio.AudioError`, bad checkpoints) print one line and exit 1
without a traceback; ``AAR_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from aar import DISTRIBUTION, __version__

# Modules under aar.cli that define commands, in the order --help lists them.
COMMAND_MODULES = [
    "tokenizer_cmds",
    "evaluate_cmd",
    "train_tokenizer_cmd",
    "aar_train_cmds",
    "generate_cmd",
    "bench_cmd",
    "demo_cmd",
    "experiment_cmd",
]


class CLIError(Exception):
    """An error caused by the user's input; printed as one line."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aar",
        description="Fast autoregressive audio generation by next-scale prediction (SAT tokenizer + AAR).",
    )
    parser.add_argument("--version", action="version", version=f"{DISTRIBUTION} {__version__} (import name aar)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"aar.cli.{name}").register(sub)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    from aar.audio import AudioError
    from aar.checkpoint import CheckpointError
    from aar.train.engine import TrainingError

    return (CLIError, AudioError, CheckpointError, TrainingError, FileNotFoundError, IsADirectoryError, PermissionError)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except _user_errors() as exc:
        if os.environ.get("AAR_DEBUG"):
            raise
        print(f"aar {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"aar {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
