"""The interface every embedding backbone implements."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from aar.checkpoint import CheckpointError, load_torch_file


@dataclass
class BackboneOutput:
    """What a backbone gives for a batch of ``B`` clips.

    Attributes:
        embeddings: ``Tensor[B x N x D]``, ``N`` embeddings per clip (frames of a fixed duration, or
            ``N = 1`` for one embedding per clip). FAD uses all of them.
        logits: ``Tensor[B x C]`` classifier logits (before any softmax/sigmoid), or None when the
            backbone has no classifier.
    """

    embeddings: torch.Tensor
    logits: torch.Tensor | None = None


class Backbone(nn.Module):
    """An audio embedding network with its own front end.

    ``forward(wav)`` takes ``Tensor[B x T]`` mono audio at :attr:`sample_rate` (equal lengths in a
    batch) and returns a :class:`BackboneOutput`. Subclasses set the attributes below.

    Attributes:
        name: the ``--backbone`` name.
        sample_rate: the rate the network expects; callers resample to it.
        embedding_dim: ``D``.
        num_classes: ``C`` for backbones with a classifier head, else 0.
        comparable: whether numbers computed with it are comparable with published ones.
        weights: where the weights came from (shown in reports, part of cache keys).
    """

    name: str = ""
    sample_rate: int = 16_000
    embedding_dim: int = 0
    num_classes: int = 0
    comparable: bool = True
    weights: str = ""

    def forward(self, wav: torch.Tensor) -> BackboneOutput:  # pragma: no cover - interface
        raise NotImplementedError


@contextmanager
def full_precision():
    """Disable TF32 in convolutions and matrix products while metrics are computed.

    With cuDNN's default TF32, CUDA embeddings differ from CPU ones by ~5e-4 (relative) and FAD/KL
    values by ~1e-3 relative; without it they agree to ~1e-6, so numbers do not depend on the device.
    """
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def read_torch_file(path: str | Path, what: str) -> object:
    """``torch.load`` a user-supplied weight file to CPU, never with the full unpickler.

    Tensors, plain containers and numpy arrays, scalars and dtypes load (the published PANNs
    checkpoints also pickle their data sampler's numpy state: an explicit allow-list,
    :func:`aar.checkpoint.numpy_safe_globals`); a file that asks for any other type is refused
    with its names, since that is how a hostile file runs code.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such {what} weight file")
    return load_torch_file(path, numpy=True)


def load_strict(module: nn.Module, state_dict: dict, path: str | Path, layout: str) -> None:
    """Load ``state_dict`` into ``module`` after a strict check of keys and shapes.

    A mismatch raises one :class:`CheckpointError` naming the file and a few offending keys. Only
    BatchNorm step counters may be absent (old checkpoints predate them).
    """
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise CheckpointError(f"{path}: not a {layout} checkpoint (expected a dict of tensors)")
    state_dict = {k.removeprefix("module."): v for k, v in state_dict.items()}
    expected = module.state_dict()
    missing = [k for k in expected if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [
        f"{k} {tuple(state_dict[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys (e.g. {', '.join(unexpected[:3])})")
        if wrong:
            parts.append(f"wrong shapes ({'; '.join(wrong[:3])})")
        raise CheckpointError(f"{path}: not a {layout} checkpoint: {'; '.join(parts)}")
    module.load_state_dict(state_dict, strict=False)
