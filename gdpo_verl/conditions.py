"""Conditioned rewards (paper Eq. 8), one definition for the estimator and the reward manager.

Standard library only: the reward manager imports it in every reward worker (no torch there).
YAML 1.1 (OmegaConf's loader) reads an unquoted ``on:`` key as ``True``; :func:`condition_keys` accepts that too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

OPTIONS = ("on", "threshold")


@dataclass(frozen=True)
class Condition:
    """Eq. 8: reward ``target`` counts only where reward ``on`` is >= ``threshold`` (else it becomes 0)."""

    target: str
    on: str
    threshold: float = 1.0


def conditioned(target: Any, gate: Any, threshold: float) -> Any:
    """Eq. 8: ``target`` where ``gate >= threshold``, else 0; NaN (missing) when either is NaN. Takes Python floats
    or, element-wise, torch tensors (the estimator's (B,) columns)."""
    missing = (target != target) | (gate != gate)  # NaN is the one value unequal to itself
    if isinstance(missing, bool):
        return math.nan if missing else (target if gate >= threshold else 0.0)
    return target.where(gate >= threshold, 0.0).masked_fill(missing, math.nan)


def condition_keys(spec: Any) -> Any:
    """``spec`` with a ``True`` key renamed to ``"on"``; anything else (not a mapping, no such key) unchanged."""
    if isinstance(spec, Mapping) and True in spec:
        return {("on" if k is True else k): v for k, v in spec.items()}
    return spec


def parse_condition(where: str, target: str, spec: Any, names: Sequence[str] | None = None) -> Condition:
    """``{on: <reward>, threshold: <number>}`` for reward ``target`` (``on`` checked against ``names`` when given);
    ValueError naming ``where``."""
    spec = condition_keys(spec)
    if not isinstance(spec, Mapping) or "on" not in spec:
        raise ValueError(f"{where} needs 'on' (and 'threshold'), got {spec!r}")
    unknown = sorted(str(k) for k in spec if k not in OPTIONS)
    if unknown:
        raise ValueError(f"{where}: unknown option(s) {unknown}; expected 'on' and 'threshold'")
    on = spec["on"]
    if on == target or (names is not None and on not in names):
        among = "" if names is None else f" of {list(names)}"
        raise ValueError(f"{where}.on={on!r} must be another key{among}")
    try:
        threshold = float(spec.get("threshold", 1.0))
    except (TypeError, ValueError):
        threshold = math.nan
    if not math.isfinite(threshold):
        raise ValueError(f"{where}.threshold must be a finite number, got {spec.get('threshold')!r}")
    return Condition(str(target), str(on), threshold)
