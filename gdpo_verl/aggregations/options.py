"""Aggregation names and options: the built-ins' options, defaults and checks, and the loading of a user's
aggregation. Standard library only (``gdpo-verl check`` and the config parser run it without torch)."""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import entry_points
from typing import Any

from gdpo_verl.plain_config import number

DEFAULT = "gdpo"  # the paper's weighted sum
ENTRY_POINT_GROUP = "gdpo_verl.aggregations"
CONFLICT_MODES = ("hard", "ratio")


class AggregationError(ValueError):
    """An aggregation name, option or result that does not fit."""


def ranges(keys: Sequence[str], raw: Any) -> tuple[list[float], list[float]]:
    """``ranges: {key: [lo, hi]}`` -> (lo, hi), one value per key; a key left out has [0, 1]."""
    raw = raw or {}
    if not isinstance(raw, Mapping):
        raise AggregationError(f"aggregation_args.ranges must map reward key -> [lo, hi], got {raw!r}")
    unknown = sorted(set(raw) - set(keys))
    if unknown:
        raise AggregationError(f"aggregation_args.ranges names {unknown}, not in gdpo_reward_keys={list(keys)}")
    lo, hi = [0.0] * len(keys), [1.0] * len(keys)
    for key, pair in raw.items():
        try:
            a, b = (float(x) for x in pair)
        except (TypeError, ValueError):
            raise AggregationError(f"aggregation_args.ranges.{key} must be [lo, hi], got {pair!r}") from None
        if not (math.isfinite(a) and math.isfinite(b) and a < b):
            raise AggregationError(f"aggregation_args.ranges.{key} must be finite with lo < hi, got {pair!r}")
        lo[keys.index(key)], hi[keys.index(key)] = a, b
    return lo, hi


def _number(name: str, **bounds: Any) -> Callable[[Any, Sequence[str]], float]:
    return lambda value, keys: number(f"aggregation_args.{name}", value, AggregationError, **bounds)


def _mode(value: Any, keys: Sequence[str]) -> str:
    if value not in CONFLICT_MODES:
        raise AggregationError(f"aggregation_args.mode must be one of {list(CONFLICT_MODES)}, got {value!r}")
    return str(value)


def _ranges(value: Any, keys: Sequence[str]) -> Any:
    ranges(keys, value)
    return value


_RANGES = (_ranges, {})
# name -> {option: (check(value, keys), default)}: the one table of the built-ins' options and defaults
OPTIONS: dict[str, dict[str, tuple[Callable[[Any, Sequence[str]], Any], Any]]] = {
    DEFAULT: {},
    "saturation": {"gamma": (_number("gamma", lo=0.0), 1.0), "ranges": _RANGES},
    "cv": {"eps": (_number("eps", lo=0.0, lo_open=True), 1e-8), "ranges": _RANGES},
    "group_variance": {"power": (_number("power", lo=0.0, lo_open=True), 1.0)},
    "conflict": {
        "mode": (_mode, "hard"),
        "ratio_threshold": (_number("ratio_threshold", lo=0.0, hi=1.0), 0.2),
        "prompt_power": (_number("prompt_power", lo=0.0), 1.0),
    },
}
# Built-ins checked against neither their paper's equations nor published code: said once at start-up.
UNVERIFIED = {
    "group_variance": "DVAO (arXiv 2605.25604): no public code and the paper's equations were not at hand",
}


def check_options(name: str, args: Any, keys: Sequence[str]) -> dict[str, Any]:
    """A built-in's options checked (an unknown one is an error listing the valid ones) with every default filled
    in; a user's aggregation gets its options as given."""
    if not isinstance(args or {}, Mapping):
        raise AggregationError(f"aggregation_args must be a mapping, got {args!r}")
    given = dict(args or {})
    if name not in OPTIONS:
        return given
    options = OPTIONS[name]
    unknown = sorted(set(given) - set(options))
    if unknown:
        raise AggregationError(
            f"aggregation {name!r} has no option(s) {unknown}; its options: {sorted(options) or 'none'}"
        )
    return {key: check(given[key], keys) if key in given else default for key, (check, default) in options.items()}


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> list[str]:
    """Every name ``aggregation`` accepts here: the built-ins, then installed entry points."""
    return [*OPTIONS, *sorted(set(_entry_points()) - set(OPTIONS))]


def load_user(name: str) -> Any:
    """The user's aggregation ``name``: an entry point of :data:`ENTRY_POINT_GROUP` or a ``package.module:function``."""
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


def validate(name: str, args: Any, keys: Sequence[str]) -> dict[str, Any]:
    """Check ``name`` (a user's is loaded now) and its options; returns the options as a plain dict, a built-in's
    with its defaults filled in."""
    if name not in OPTIONS:
        load_user(name)
    return check_options(name, args, keys)
