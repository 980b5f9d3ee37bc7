"""Exact shapes of the code the CPU Megatron adjustments rewrite (not just call): an attribute, a signature parameter, a
source fragment of megatron-core / mbridge. A mismatch stops with :class:`ShapeChanged` naming what moved and the
releases the adjustments are written for."""

from __future__ import annotations

import inspect
from types import ModuleType
from typing import Any

from ...verl_shapes import VerlShapeError

PINS = "megatron-core==0.16.1, mbridge==0.15.1"  # what the CPU Megatron adjustments rewrite (install_cpu.sh --megatron)


class ShapeChanged(VerlShapeError):
    """Code an adjustment rewrites (CPU Megatron) is not the exact shape it was written for."""


def _fail(where: str, what: str) -> ShapeChanged:
    return ShapeChanged(
        f"gdpo-verl CPU Megatron: {where}: {what}. The CPU adjustments are written for {PINS} "
        "(bash scripts/install_cpu.sh --megatron installs them)."
    )


def attribute(owner: Any, name: str, where: str) -> Any:
    """``owner.name``, or :class:`ShapeChanged` naming it."""
    if not hasattr(owner, name):
        raise _fail(where, f"attribute '{name}' is missing")
    return getattr(owner, name)


def source_has(obj: Any, fragments: tuple[str, ...], where: str) -> None:
    """The source of ``obj`` (a function, class or module) contains every fragment."""
    try:
        src = inspect.getsource(obj)
    except (OSError, TypeError) as exc:
        raise _fail(where, f"its source cannot be read ({exc})") from exc
    missing = [f for f in fragments if f not in src]
    if missing:
        raise _fail(where, f"the code no longer contains {missing!r}")


def has_parameters(fn: Any, names: tuple[str, ...], where: str) -> None:
    """``fn``'s signature has every parameter in ``names``."""
    params = inspect.signature(fn).parameters
    missing = [n for n in names if n not in params]
    if missing:
        raise _fail(where, f"its signature lacks {missing!r} (has {list(params)})")


def qualname(module: ModuleType, attr: str) -> str:
    return f"{module.__name__}.{attr}"
