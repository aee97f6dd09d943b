"""The one checkpoint reader/writer of the project.

- Pretrained folders: ``config.json`` (with a ``"kind"`` field: ``"sat"``, ``"aar"``, ...)
  plus ``model.safetensors``. Written with :func:`save_folder`, read with :func:`load_folder`.
- Training checkpoints (optimizer, RNG, step, ...): :func:`atomic_torch_save`.

Every write goes to a temporary file in the destination folder, is flushed to disk and then
renamed over the target, so a crash never leaves a half-written file behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from safetensors.torch import load_file, save_file

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class CheckpointError(ValueError):
    """A checkpoint is missing, of the wrong kind, or does not match the model. Names the path."""


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def atomic_write_text(text: str, path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def save_folder(directory: str | os.PathLike, kind: str, config: dict, state_dict: dict[str, torch.Tensor]) -> Path:
    """Write ``config.json`` (with ``kind``) and ``model.safetensors`` into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    with atomic_path(directory / WEIGHTS_NAME) as tmp:
        save_file(tensors, str(tmp), metadata={"kind": kind})
    atomic_write_text(json.dumps({"kind": kind, **config}, indent=2) + "\n", directory / CONFIG_NAME)
    return directory


def is_folder_checkpoint(path: str | os.PathLike) -> bool:
    path = Path(path)
    return path.is_dir() and (path / CONFIG_NAME).is_file()


def load_folder(directory: str | os.PathLike, kind: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """Read a folder written by :func:`save_folder`; checks that it holds a ``kind`` model."""
    directory = Path(directory)
    if not directory.exists():
        raise CheckpointError(f"{directory}: no such file or directory")
    cfg_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    if not cfg_path.is_file():
        raise CheckpointError(f"{directory}: not a model folder (no {CONFIG_NAME})")
    try:
        config = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{cfg_path}: invalid JSON ({exc})") from None
    found = config.pop("kind", None)
    if found != kind:
        raise CheckpointError(f"{directory}: holds a {found or 'unknown'!s} model, expected a {kind} model")
    if not weights_path.is_file():
        raise CheckpointError(f"{directory}: missing {WEIGHTS_NAME}")
    try:
        state = load_file(str(weights_path))
    except Exception as exc:
        raise CheckpointError(f"{weights_path}: cannot read weights ({exc})") from None
    return config, state


def load_torch_file(path: str | os.PathLike) -> Any:
    """``torch.load`` with ``weights_only=True`` and errors that name the file."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory but has no {CONFIG_NAME}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__})") from None
