"""The transformer architectures by name, and loading a saved model of either kind."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from aar.checkpoint import CONFIG_NAME, CheckpointError, is_folder_checkpoint
from aar.tokenizer import SAT
from aar.transformer.next_scale import AAR
from aar.transformer.next_token import NextTokenAR

# ``aar train-aar --arch NAME`` and the benchmarks pick the model class here.
ARCHITECTURES: dict[str, type[AAR]] = {"next-scale": AAR, "next-token": NextTokenAR}


def load_transformer(
    path: str | os.PathLike,
    tokenizer: SAT | str | os.PathLike | None = None,
    device: str | torch.device | None = None,
) -> AAR:
    """A saved :class:`AAR` or :class:`NextTokenAR`, whichever ``path`` holds (a folder's
    ``config.json`` names its kind; an authors' ``.pth`` is a next-scale model). Eval mode."""
    path = Path(path)
    cls = AAR
    if is_folder_checkpoint(path):
        try:
            kind = json.loads((path / CONFIG_NAME).read_text()).get("kind")
        except (json.JSONDecodeError, AttributeError) as exc:
            raise CheckpointError(f"{path / CONFIG_NAME}: invalid JSON ({exc})") from None
        # any other kind is left to AAR.from_pretrained, which names what the folder holds
        cls = {c.kind: c for c in ARCHITECTURES.values()}.get(kind, AAR)
    return cls.from_pretrained(path, tokenizer=tokenizer, device=device)
