"""The conditioning interface: turn a user's prompt into what :class:`aar.AAR` takes as ``cond``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch


class Conditioner(ABC):
    """Maps a batch of prompts to the model's ``cond`` input.

    ``condition`` names the kind of model it feeds (``AARConfig.condition``): ``"clap"``
    conditioners return ``Tensor[B x cond_dim]``, ``"label"`` ones ``LongTensor[B]`` class ids,
    ``"none"`` returns None (the null condition).
    """

    condition: str

    @abstractmethod
    def __call__(self, prompts: Any) -> torch.Tensor | None:
        """A batch of prompts -> ``cond`` for :meth:`aar.AAR.forward` / :meth:`aar.AAR.generate`."""

    def check_model(self, model_condition: str) -> None:
        """Raise ValueError unless this conditioner produces what a ``model_condition`` model takes."""
        if model_condition != self.condition:
            raise ValueError(
                f"{type(self).__name__} makes {self.condition!r} conditions, but the model is "
                f"conditioned on {model_condition!r}"
            )
