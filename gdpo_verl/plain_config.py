"""Any config verl hands over, as plain Python (no torch, no verl import: `gdpo-verl check` uses it too)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any


def to_plain(value: Any) -> Any:
    """OmegaConf containers, dataclasses (verl's AlgoConfig) and mappings -> dicts and lists, recursively.
    omegaconf is imported only when the value is one of its containers."""
    if type(value).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        return OmegaConf.to_container(value, resolve=True)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {k: to_plain(v) for k, v in value.items()}
    return value
