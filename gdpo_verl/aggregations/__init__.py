"""Multi-reward aggregations behind ``algorithm.gdpo.aggregation`` (default ``gdpo``: the paper's weighted sum,
computed by :func:`gdpo_verl.core.gdpo_advantages` itself). See docs/aggregations.md.

A name resolves to a built-in (:mod:`.builtins`), an entry point of the group ``gdpo_verl.aggregations``, or a
``package.module:function``; anything else is an error listing what exists.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from .base import AggregationConfig, AggregationError, AggregationFn, AggregationOutput, check_output
from .builtins import BUILTINS, saturation_of, sign_conflict

DEFAULT = "gdpo"
ENTRY_POINT_GROUP = "gdpo_verl.aggregations"

__all__ = [
    "DEFAULT",
    "ENTRY_POINT_GROUP",
    "AggregationConfig",
    "AggregationError",
    "AggregationOutput",
    "available",
    "check_output",
    "resolve",
    "saturation_of",
    "sign_conflict",
    "validate",
]


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> list[str]:
    """Every name ``aggregation`` accepts here: the built-ins, then installed entry points."""
    return [DEFAULT, *BUILTINS, *sorted(set(_entry_points()) - set(BUILTINS) - {DEFAULT})]


def resolve(name: str) -> AggregationFn | None:
    """The function behind ``name`` (None for the default ``gdpo``)."""
    if name == DEFAULT:
        return None
    if name in BUILTINS:
        return BUILTINS[name][0]
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
    """Check ``name`` and its options (built-ins: unknown option -> error listing the valid ones). Returns the
    options as a plain dict; a user's aggregation gets its options unchecked."""
    if not isinstance(args or {}, Mapping):
        raise AggregationError(f"aggregation_args must be a mapping, got {args!r}")
    args = dict(args or {})
    resolve(name)
    if name == DEFAULT or name in BUILTINS:
        options = {} if name == DEFAULT else BUILTINS[name][1]
        unknown = sorted(set(args) - set(options))
        if unknown:
            raise AggregationError(
                f"aggregation {name!r} has no option(s) {unknown}; its options: {sorted(options) or 'none'}"
            )
        for key, value in args.items():
            options[key](value, keys)
    return args
