"""Any config verl hands over, as plain Python (no torch, no verl import: `gdpo-verl check` uses it too)."""

from __future__ import annotations

import dataclasses
import math
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


def number(
    where: str,
    value: Any,
    error: type[ValueError] = ValueError,
    lo: float = -math.inf,
    hi: float = math.inf,
    lo_open: bool = False,
    integer: bool = False,
) -> float:
    """``value`` as a finite float within [lo, hi] (``lo_open``: > lo; ``integer``: a whole number), else ``error``
    naming ``where`` and what it must be. The one number check of every GDPO setting."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise error(f"{where} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise error(f"{where} must be finite, got {value!r}")
    if x < lo or x > hi or (lo_open and x == lo) or (integer and x != int(x)):
        bounds = [f"> {lo:g}" if lo_open else f">= {lo:g}"] if lo > -math.inf else []
        bounds += [f"<= {hi:g}"] if hi < math.inf else []
        raise error(f"{where} must be {'an integer ' if integer else ''}{' and '.join(bounds)}, got {value!r}")
    return x
