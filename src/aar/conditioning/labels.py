"""Class-label conditioning: names -> class ids, looked up in the model's learned class table."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from aar.conditioning.base import Conditioner


class LabelConditioner(Conditioner):
    """``["dog", "rain"]`` -> ``LongTensor[2]`` class ids, in the order of ``class_names``.

    Use it for models trained with ``condition="label"`` (e.g. the embedded demo), which need no
    CLAP model.
    """

    condition = "label"

    def __init__(self, class_names: Sequence[str]):
        if not class_names:
            raise ValueError("class_names must not be empty")
        self.class_names = list(class_names)
        self._index = {name: i for i, name in enumerate(self.class_names)}

    def __call__(self, prompts: Sequence[str] | str) -> torch.Tensor:
        names = [prompts] if isinstance(prompts, str) else list(prompts)
        unknown = [n for n in names if n not in self._index]
        if unknown:
            raise ValueError(f"unknown label {unknown[0]!r}; the model knows: {', '.join(self.class_names)}")
        return torch.tensor([self._index[n] for n in names], dtype=torch.long)
