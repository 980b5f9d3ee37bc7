"""Multi-reward aggregations behind ``algorithm.gdpo.aggregation``: the step between the group step (Eq. 4) and
the batch step (Eq. 6) that combines the per-reward advantages. Default ``gdpo``: the paper's weighted sum
(Eq. 5/7). See docs/aggregations.md.

A name resolves to a built-in (:mod:`.builtins`), an entry point of the group ``gdpo_verl.aggregations``, or a
``package.module:function``; anything else is an error listing what exists. Importing this package needs no torch
(names and options are checked without it); the torch parts load on first use.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from .options import DEFAULT, OPTIONS, UNVERIFIED, AggregationError, check_options

ENTRY_POINT_GROUP = "gdpo_verl.aggregations"
_TORCH_NAMES = ("AggregationConfig", "AggregationFn", "AggregationOutput", "check_output")

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


def __getattr__(name: str) -> Any:  # the torch-backed names, imported on first use
    if name in _TORCH_NAMES:
        from . import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> list[str]:
    """Every name ``aggregation`` accepts here: the built-ins, then installed entry points."""
    return [*OPTIONS, *sorted(set(_entry_points()) - set(OPTIONS))]


def resolve(name: str) -> Any:
    """The function behind ``name`` (a built-in's, ``gdpo`` included, or the user's)."""
    if name in OPTIONS:
        from .builtins import BUILTINS

        return BUILTINS[name]
    eps = _entry_points()
    if name in eps:
        try:
            fn = eps[name].load()
        except Exception as e:  # noqa: BLE001 - the user's package: say which entry point failed
            raise AggregationError(f"aggregation {name!r}: entry point {eps[name].value!r} failed to load: {e}") from e
    elif ":" in name:
        module, _, attr = name.partition(":")
        try:
            fn = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise AggregationError(f"aggregation {name!r}: cannot load {attr!r} from {module!r}: {e}") from e
    else:
        raise AggregationError(
            f"unknown aggregation {name!r}; available: {available()}, or 'package.module:function', or an entry "
            f"point in the group {ENTRY_POINT_GROUP!r}"
        )
    if not callable(fn):
        raise AggregationError(f"aggregation {name!r} is not callable: {fn!r}")
    return fn


def validate(name: str, args: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    """Check ``name`` (a user's is loaded now, without torch only if it needs none) and its options; returns the
    options as a plain dict, a built-in's with its defaults filled in."""
    if name not in OPTIONS:
        resolve(name)
    return check_options(name, args, keys)
