"""Shape guards: each CPU adjustment first checks that the code it changes still looks the way it was written for.

The adjustments are written against ``megatron-core==0.16.1`` and ``mbridge==0.15.1`` (the pins of
``scripts/install_cpu.sh --megatron``). Instead of comparing version strings, each one checks the exact shape it
patches (the attribute exists, its signature has the parameter, its source still has the CUDA call) and stops with
:class:`ShapeChanged`, naming what moved, when it does not.
"""

from __future__ import annotations

import inspect
from types import ModuleType
from typing import Any

PINS = "megatron-core==0.16.1, mbridge==0.15.1"


class ShapeChanged(RuntimeError):
    """The code a CPU Megatron adjustment patches is not the shape it was written for."""


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


def already(obj: Any) -> bool:
    """Whether ``obj`` is one of ours (patches are idempotent)."""
    return bool(getattr(obj, "__gdpo_cpu__", False))


def mark(obj: Any) -> Any:
    obj.__gdpo_cpu__ = True
    return obj
