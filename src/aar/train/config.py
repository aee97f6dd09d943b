"""Reading training configurations: YAML files or packaged presets, one dataclass per section."""

from __future__ import annotations

import dataclasses
import os
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


def build_section(cls: type[T], data: Any, name: str) -> T:
    """``cls(**data)`` with errors that name the section and any unknown key."""
    if data is None:
        data = {}
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ValueError(f"config section {name!r} must be a mapping, got {type(data).__name__}")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ValueError(f"unknown key(s) in config section {name!r}: {', '.join(unknown)} (known: {', '.join(sorted(fields))})")
    try:
        return cls(**data)
    except TypeError as exc:
        raise ValueError(f"config section {name!r}: {exc}") from None


def preset_names(kind: str) -> list[str]:
    """Names of the packaged presets under ``aar/configs/<kind>/``."""
    folder = resources.files("aar") / "configs" / kind
    if not folder.is_dir():
        return []
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def read_config(name_or_path: str | os.PathLike, kind: str) -> tuple[dict, str]:
    """The mapping in a YAML file, or in the packaged preset ``aar/configs/<kind>/<name>.yaml``.
    Returns (mapping, where it came from)."""
    path = Path(name_or_path)
    if path.is_file():
        where, text = str(path), path.read_text()
    elif str(name_or_path) in preset_names(kind):
        resource = resources.files("aar") / "configs" / kind / f"{name_or_path}.yaml"
        where, text = f"preset {name_or_path}", resource.read_text()
    else:
        raise ValueError(
            f"{name_or_path}: no such config file or {kind} preset (presets: {', '.join(preset_names(kind)) or 'none'})"
        )
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{where}: invalid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping of config sections")
    return data, where
