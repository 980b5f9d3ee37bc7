"""Multi-reward aggregations behind ``algorithm.gdpo.aggregation``: the step between the group step (Eq. 4) and
the batch step (Eq. 6) that combines the per-reward advantages. Default ``gdpo``: the paper's weighted sum
(Eq. 5/7). See docs/aggregations.md.

A name resolves to a built-in (:mod:`.builtins`), an entry point of the group ``gdpo_verl.aggregations``, or a
``package.module:function``; anything else is an error listing what exists. Importing this package needs no torch
(names and options are checked without it); the torch parts load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from .options import (
    DEFAULT,
    ENTRY_POINT_GROUP,
    UNVERIFIED,
    AggregationError,
    available,
    validate,
)

_TORCH_NAMES = {  # torch-backed names, imported on first use
    "AggregationConfig": "base",
    "AggregationFn": "base",
    "AggregationOutput": "base",
    "check_output": "base",
    "resolve": "builtins",
}

__all__ = [
    "DEFAULT",
    "ENTRY_POINT_GROUP",
    "UNVERIFIED",
    "AggregationConfig",
    "AggregationError",
    "AggregationOutput",
    "available",
    "check_output",
    "resolve",
    "validate",
]


def __getattr__(name: str) -> Any:
    if name in _TORCH_NAMES:
        return getattr(importlib.import_module(f"{__name__}.{_TORCH_NAMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
