"""YAML 1.1 (OmegaConf's loader) reads an unquoted ``on:`` key as ``True``. Conditions (paper Eq. 8) use an ``on``
key, so both the estimator config and the reward manager read them through :func:`condition_keys`. Standard library
only: the reward manager imports it in every reward worker."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def condition_keys(spec: Any) -> Any:
    """``spec`` with a ``True`` key renamed to ``"on"``; anything else (not a mapping, no such key) unchanged."""
    if isinstance(spec, Mapping) and True in spec:
        return {("on" if k is True else k): v for k, v in spec.items()}
    return spec
