"""Unconditional generation: every clip gets the model's null condition."""

from __future__ import annotations

from typing import Any

from aar.conditioning.base import Conditioner


class Unconditional(Conditioner):
    """Always None: :meth:`aar.AAR.generate` then samples ``num_samples`` clips from the null
    condition (no guidance). Works with every model; it is the only option for
    ``condition="none"`` models."""

    condition = "none"

    def __call__(self, prompts: Any = None) -> None:
        return None

    def check_model(self, model_condition: str) -> None:
        """Any model can sample from its null condition."""
