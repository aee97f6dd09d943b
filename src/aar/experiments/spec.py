"""Experiment specifications: the YAML files under ``aar/configs/experiments/``.

A ``tokenizer`` experiment lists variants of one tokenizer training configuration (``base``: a
preset or YAML file of ``aar train-tokenizer``); each variant overrides sections of it::

    kind: tokenizer
    base: tiny
    variants:
      - name: rvq-8x75
        model: {scales: [75, 75, 75, 75, 75, 75, 75, 75], phi: none}

``model.scales`` may be ``quadratic`` or ``linear`` (16 scales ending at the latent length of
the variant's window) or an explicit list. A ``guidance`` experiment lists guidance scales
(``cfg``) at which a trained AAR generates.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field

import numpy as np

from aar.tokenizer import SATConfig
from aar.tokenizer.config import linear_schedule, quadratic_schedule
from aar.train.config import read_config
from aar.train.tokenizer import TokenizerTrainConfig

KINDS = ("tokenizer", "guidance")
SCHEDULES = {"quadratic": quadratic_schedule, "linear": linear_schedule}
NUM_SCALES = 16


@dataclass
class Variant:
    name: str
    config: TokenizerTrainConfig
    overrides: dict


@dataclass
class ExperimentSpec:
    name: str
    title: str
    kind: str
    variants: list[Variant] = field(default_factory=list)  # tokenizer experiments
    cfg: list[float] = field(default_factory=list)  # guidance experiments
    clips_per_class: int = 8
    top_k: int = 200
    top_p: float = 0.95
    seed: int = 0

    @classmethod
    def load(cls, name_or_path: str | os.PathLike) -> "ExperimentSpec":
        """A YAML file or a packaged experiment name (``schedule``, ``phi``, ``discriminator``,
        ``window``, ``guidance``)."""
        data, where = read_config(name_or_path, "experiments")
        name = os.path.splitext(os.path.basename(str(name_or_path)))[0]
        try:
            return cls.from_dict(name, data)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None

    @classmethod
    def from_dict(cls, name: str, data: dict) -> "ExperimentSpec":
        kind = data.get("kind")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        spec = cls(name=name, title=str(data.get("title", name)), kind=kind)
        if kind == "guidance":
            spec.cfg = [float(c) for c in data.get("cfg") or []]
            if not spec.cfg:
                raise ValueError("a guidance experiment needs a non-empty 'cfg' list")
            spec.clips_per_class = int(data.get("clips_per_class", 8))
            spec.top_k = int(data.get("top_k", 200))
            spec.top_p = float(data.get("top_p", 0.95))
            spec.seed = int(data.get("seed", 0))
            return spec
        base, _ = read_config(data.get("base", "tiny"), "tokenizer")
        variants = data.get("variants") or []
        if not variants:
            raise ValueError("a tokenizer experiment needs a non-empty 'variants' list")
        names = [v.get("name") if isinstance(v, dict) else None for v in variants]
        if None in names or len(set(names)) != len(names):
            raise ValueError(f"every variant needs a distinct 'name', got {names}")
        for v in variants:
            overrides = {k: val for k, val in v.items() if k != "name"}
            try:
                config = variant_config(base, overrides)
            except ValueError as exc:
                raise ValueError(f"variant {v['name']!r}: {exc}") from None
            spec.variants.append(Variant(v["name"], config, overrides))
        return spec


def variant_config(base: dict, overrides: dict) -> TokenizerTrainConfig:
    """``base`` (a tokenizer training config mapping) with each section of ``overrides`` merged
    into it; a named ``model.scales`` schedule is resolved for the variant's latent length."""
    data = copy.deepcopy(base)
    model = data.get("model", "tiny")
    if isinstance(model, str):
        model = SATConfig.preset(model).to_dict()
    elif "preset" in model:
        model = {**SATConfig.preset(model.pop("preset")).to_dict(), **model}
    data["model"] = model
    for section, values in overrides.items():
        if not isinstance(values, dict):
            raise ValueError(f"override of section {section!r} must be a mapping, got {values!r}")
        data[section] = {**(data.get(section) or {}), **values}
    scales = data["model"].get("scales")
    if isinstance(scales, str):
        if scales not in SCHEDULES:
            raise ValueError(f"model.scales must be a list or one of {sorted(SCHEDULES)}, got {scales!r}")
        data["model"]["scales"] = SCHEDULES[scales](NUM_SCALES, latent_length(data["model"]))
    return TokenizerTrainConfig.from_dict(data)


def latent_length(model: dict) -> int:
    """Latent frames of one window for a mapping of SATConfig fields (defaults filled in)."""
    defaults = SATConfig.__dataclass_fields__
    sr = model.get("sample_rate", defaults["sample_rate"].default)
    window = model.get("window_seconds", defaults["window_seconds"].default)
    ratios = model.get("ratios") or defaults["ratios"].default_factory()
    return int(round(sr * float(window) / int(np.prod(ratios))))
