"""SAT configuration: one dataclass, scale schedules and presets."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

PAPER_SCALES = [1, 2, 4, 6, 9, 12, 16, 20, 25, 31, 37, 43, 50, 58, 66, 75]
PHI_MODES = ("partial", "shared", "per_scale", "none")


def quadratic_schedule(num_scales: int = 16, length: int = 75) -> list[int]:
    """Token counts ``floor(linspace(1, sqrt(length), num_scales) ** 2)``, made strictly increasing
    and ending at ``length``. ``quadratic_schedule(16, 75)`` is the paper's 455-token schedule."""
    if num_scales < 1 or num_scales > length:
        raise ValueError(f"num_scales must be in [1, {length}], got {num_scales}")
    raw = np.floor(np.linspace(1.0, math.sqrt(length), num_scales) ** 2 + 1e-6).astype(int).tolist()
    return _make_increasing(raw, length)


def linear_schedule(num_scales: int = 16, length: int = 75) -> list[int]:
    """Token counts ``round(linspace(1, length, num_scales))``, strictly increasing, ending at ``length``."""
    if num_scales < 1 or num_scales > length:
        raise ValueError(f"num_scales must be in [1, {length}], got {num_scales}")
    raw = np.round(np.linspace(1.0, length, num_scales)).astype(int).tolist()
    return _make_increasing(raw, length)


def _make_increasing(raw: list[int], length: int) -> list[int]:
    raw[-1] = length
    for i in range(len(raw) - 2, -1, -1):  # push duplicates down so the list stays strictly increasing
        raw[i] = min(raw[i], raw[i + 1] - 1)
    for i in range(len(raw)):
        raw[i] = max(raw[i], i + 1)
    return raw


def validate_scales(scales: list[int], length: int) -> list[int]:
    """Check an explicit schedule: positive, non-decreasing integers ending at ``length``.

    Equal entries are allowed so that plain residual VQ (every level at the full frame rate,
    e.g. ``[75] * 8``, the EnCodec-style baseline) is a schedule like any other."""
    try:
        scales = [int(s) for s in scales]
    except (TypeError, ValueError):
        raise ValueError(f"scales must be a list of integers, got {scales!r}") from None
    if not scales:
        raise ValueError("scales must not be empty")
    if scales[0] < 1:
        raise ValueError(f"scales must be positive, got {scales}")
    if any(b < a for a, b in zip(scales, scales[1:])):
        raise ValueError(f"scales must be increasing (non-decreasing), got {scales}")
    if scales[-1] != length:
        raise ValueError(f"the last scale must equal the latent length {length}, got {scales[-1]} (scales {scales})")
    return scales


def phi_index(k: int, num_scales: int, num_phi: int) -> int:
    """Which of ``num_phi`` partially shared phi convs scale ``k`` (0-based) uses.

    The convs sit at ticks ``linspace(1/(2n), 1 - 1/(2n), n)`` (``1/(3n)`` margins when n == 4, as
    released); scale k takes the nearest tick to ``k / (K - 1)``, computed in float64, the lower
    index winning a tie."""
    if num_phi == 1:
        return 0
    margin = 1.0 / 3.0 / num_phi if num_phi == 4 else 1.0 / 2.0 / num_phi
    ticks = np.linspace(margin, 1.0 - margin, num_phi)
    at = k / (num_scales - 1) if num_scales > 1 else 0.0
    return int(np.argmin(np.abs(ticks - at)))


@dataclass
class SATConfig:
    """Everything that defines a Scale-level Audio Tokenizer.

    Encoder/decoder: the SEANet pair of EnCodec 24 kHz. Quantizer: multi-scale residual
    quantization over the ``latent_length = sample_rate * window / hop`` latent frames.
    """

    sample_rate: int = 24_000
    channels: int = 1
    # SEANet
    dimension: int = 128
    n_filters: int = 32
    ratios: list[int] = field(default_factory=lambda: [8, 5, 4, 2])
    n_residual_layers: int = 1
    lstm: int = 2
    causal: bool = False
    kernel_size: int = 7
    last_kernel_size: int = 7
    residual_kernel_size: int = 3
    dilation_base: int = 2
    compress: int = 2
    pad_mode: str = "reflect"
    # quantizer
    latent_dim: int = 128
    codebook_size: int = 1024
    window_seconds: float = 1.0
    scales: list[int] = field(default_factory=lambda: list(PAPER_SCALES))
    phi: str = "partial"
    phi_count: int = 6
    phi_kernel: int = 9
    phi_ratio: float = 0.5
    ema_decay: float = 0.99
    ema_epsilon: float = 1e-5
    kmeans_iters: int = 50
    dead_code_threshold: float = 2.0

    def __post_init__(self):
        self.ratios = [int(r) for r in self.ratios]
        for f in dataclasses.fields(self):  # YAML 1.1 reads "1e-5" as a string
            if f.type == "float" and isinstance(getattr(self, f.name), (str, int)):
                setattr(self, f.name, float(getattr(self, f.name)))
        if self.phi not in PHI_MODES:
            raise ValueError(f"phi must be one of {PHI_MODES}, got {self.phi!r}")
        if self.phi_kernel % 2 != 1:
            raise ValueError(f"phi_kernel must be odd, got {self.phi_kernel}")
        for name in ("dimension", "latent_dim", "n_filters", "codebook_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        frames = self.sample_rate * self.window_seconds / self.hop_length
        if abs(frames - round(frames)) > 1e-9:
            raise ValueError(
                f"window_seconds={self.window_seconds} is not a whole number of latent frames (hop {self.hop_length})"
            )
        self.scales = validate_scales(self.scales, self.latent_length)

    # derived sizes
    @property
    def hop_length(self) -> int:
        return int(np.prod(self.ratios))

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def window_samples(self) -> int:
        return int(round(self.sample_rate * self.window_seconds))

    @property
    def latent_length(self) -> int:
        return int(round(self.sample_rate * self.window_seconds / self.hop_length))

    @property
    def num_scales(self) -> int:
        return len(self.scales)

    @property
    def tokens_per_window(self) -> int:
        return sum(self.scales)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens_per_window / self.window_seconds

    @property
    def num_phi(self) -> int:
        return {"partial": self.phi_count, "shared": 1, "per_scale": self.num_scales, "none": 0}[self.phi]

    def phi_for_scale(self, k: int) -> int | None:
        """Index of the phi conv used by scale ``k`` (0-based), or None when phi is off."""
        if self.phi == "none":
            return None
        if self.phi == "per_scale":
            return k
        return phi_index(k, self.num_scales, self.num_phi)

    # serialisation
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SATConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown SAT config field(s): {', '.join(unknown)}")
        return cls(**data)

    def save(self, path: str | os.PathLike) -> Path:
        """Write as YAML (``.yaml``/``.yml``) or JSON (anything else)."""
        path = Path(path)
        data = self.to_dict()
        text = yaml.safe_dump(data, sort_keys=False) if path.suffix in (".yaml", ".yml") else json.dumps(data, indent=2)
        path.write_text(text)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SATConfig":
        path = Path(path)
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of SAT config fields")
        data.pop("kind", None)
        return cls.from_dict(data)

    @classmethod
    def preset(cls, name: str) -> "SATConfig":
        """``tiny`` (CPU tests and the demo), ``paper-d128-lat128`` (the tokenizer of the released
        AAR) or ``paper-d1024-lat64`` (the paper's other tokenizer)."""
        if name not in SAT_PRESETS:
            raise ValueError(f"unknown SAT preset {name!r}; choose from {', '.join(SAT_PRESETS)}")
        return cls(**SAT_PRESETS[name])


SAT_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(dimension=32, latent_dim=16, n_filters=8, lstm=1),
    "paper-d128-lat128": dict(dimension=128, latent_dim=128),
    "paper-d1024-lat64": dict(dimension=1024, latent_dim=64),
}
