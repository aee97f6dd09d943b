"""AAR configuration: one dataclass and the size presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

CONDITIONS = ("clap", "label", "none")


@dataclass
class AARConfig:
    """Everything that defines an AAR next-scale transformer.

    Sizes follow the paper: ``width = 64 * depth``, ``num_heads = depth``, MLP ratio 4,
    stochastic depth ``0.1 * depth / 24``. ``scales``, ``latent_dim`` and ``vocab_size``
    describe the tokenizer the model is paired with; left as None they are taken from the
    tokenizer when the model is built.

    Conditioning (``condition``):

    - ``"clap"``: a ``cond_dim``-vector per clip (CLAP audio or text embedding, 512-d).
    - ``"label"``: an integer class id; ``class_names`` names the classes, and a learned table
      maps each class to a ``cond_dim`` vector.
    - ``"none"``: unconditional; every clip gets the null condition.

    In every mode the vector goes through the condition MLP, and the null condition (used
    for condition dropout and guidance) is the fixed random ``uncond_embedding``, as released.
    """

    depth: int = 16
    width: int | None = None
    num_heads: int | None = None
    mlp_ratio: float = 4.0
    cos_attn: bool = True
    attn_tau: float = 4.0
    norm_eps: float = 1e-6
    drop_path_rate: float | None = None
    cond_drop_rate: float = 0.1
    condition: str = "clap"
    cond_dim: int = 512
    class_names: list[str] = field(default_factory=list)
    scales: list[int] | None = None
    latent_dim: int | None = None
    vocab_size: int | None = None

    def __post_init__(self):
        if self.depth < 1:
            raise ValueError(f"depth must be positive, got {self.depth}")
        if self.width is None:
            self.width = 64 * self.depth
        if self.num_heads is None:
            self.num_heads = self.depth
        if self.width % self.num_heads:
            raise ValueError(f"width {self.width} is not divisible by num_heads {self.num_heads}")
        if self.drop_path_rate is None:
            self.drop_path_rate = 0.1 * self.depth / 24
        if not 0.0 <= self.cond_drop_rate < 1.0:
            raise ValueError(f"cond_drop_rate must be in [0, 1), got {self.cond_drop_rate}")
        if self.condition not in CONDITIONS:
            raise ValueError(f"condition must be one of {CONDITIONS}, got {self.condition!r}")
        self.class_names = [str(n) for n in self.class_names]
        if self.condition == "label":
            if not self.class_names:
                raise ValueError("condition 'label' needs class_names (one name per class)")
            if len(set(self.class_names)) != len(self.class_names):
                raise ValueError("class_names must be unique")
        if self.scales is not None:
            self.scales = [int(s) for s in self.scales]

    @property
    def head_dim(self) -> int:
        assert self.width is not None and self.num_heads is not None  # set by __post_init__
        return self.width // self.num_heads

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_scales(self) -> int:
        return len(self.scales or ())

    @property
    def seq_len(self) -> int:
        return sum(self.scales or ())

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AARConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown AAR config field(s): {', '.join(unknown)}")
        return cls(**data)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "AARConfig":
        """``d4`` / ``d8`` (CPU-sized) or ``d16`` (the paper's, width 1024); fields in
        ``overrides`` replace the preset's."""
        if name not in AAR_PRESETS:
            raise ValueError(f"unknown AAR preset {name!r}; choose from {', '.join(AAR_PRESETS)}")
        return cls.from_dict({**AAR_PRESETS[name], **overrides})


AAR_PRESETS: dict[str, dict[str, Any]] = {
    "d4": dict(depth=4),
    "d8": dict(depth=8),
    "d16": dict(depth=16),
}
