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
import pickle
import tempfile
import warnings
import zipfile
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


def check_finite_weights(state: dict[str, torch.Tensor], path: str | os.PathLike) -> None:
    """Refuse weights holding NaN or infinite values (a diverged run's, or a damaged file): such a
    model would only ever produce NaN. Names the file, the count of tensors and the first one."""
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(
            f"{path}: {len(bad)} weight tensor(s) hold NaN or infinite values (first: {bad[0]}); "
            "the model is unusable (a diverged training run or a damaged file)"
        )


def numpy_safe_globals() -> list:
    """The numpy types a weight file may hold besides tensors (plain arrays, scalars and dtypes, e.g.
    the data-sampler state pickled into the published PANNs checkpoints), for
    ``torch.serialization.safe_globals``. Each is a constructor of plain data: an array of Python
    objects would still need its objects' classes, which stay refused. Both module spellings are
    listed, so files pickled before and after numpy 2 load."""
    import numpy as np

    try:
        from numpy._core import multiarray
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray
    named = []
    for fn in (multiarray._reconstruct, multiarray.scalar):
        named += [(fn, f"numpy.core.multiarray.{fn.__name__}"), (fn, f"numpy._core.multiarray.{fn.__name__}")]
    dtypes = {type(np.dtype(code)) for code in np.typecodes["All"] if code not in "Mm"}
    return [np.ndarray, np.dtype, *named, *sorted(dtypes, key=lambda t: t.__name__)]


def load_torch_file(path: str | os.PathLike, numpy: bool = False) -> Any:
    """``torch.load`` with ``weights_only=True`` and errors that name the file.

    Never runs the full unpickler: a file that pickles anything but tensors and plain containers
    is refused with the names of the types it asks for (which is how a hostile file runs code).
    ``numpy=True`` also admits numpy arrays, scalars and dtypes (:func:`numpy_safe_globals`)."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise CheckpointError(f"{path}: broken or looping symbolic link")
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory but has no {CONFIG_NAME}")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file, not a PyTorch checkpoint")
    try:
        with torch.serialization.safe_globals(numpy_safe_globals() if numpy else []), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4": the error below says it
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        unsafe = _unsafe_globals(path)
        if unsafe:
            raise CheckpointError(
                f"{path}: refused: it pickles {', '.join(unsafe[:3])}{' ...' if len(unsafe) > 3 else ''}, not only "
                "tensors and plain data (loading it could run code)"
            ) from None
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({_reason(path, None)})") from None
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({_reason(path, exc)})") from None


def _unsafe_globals(path: Path) -> list[str]:
    """The globals a checkpoint's pickle names that ``weights_only`` does not admit (read from the
    opcodes, nothing is run); empty when the file cannot be scanned."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:
        return []


def _reason(path: Path, exc: Exception | None) -> str:
    """A short, one-line reason for a failed ``torch.load``."""
    if not zipfile.is_zipfile(path):
        return "truncated, or not a file written by torch.save"
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    text = str(exc).strip().splitlines()[0] if exc is not None and str(exc).strip() else ""
    return f"corrupt archive: {text[:100]}" if text else "corrupt archive"
