"""The one "already patched" marker: every function, class attribute or object the plugin puts into verl (or into
megatron-core / mbridge) carries it, so a hook applied twice (a module imported again, a piece installed again) is a
no-op."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MARK = "__gdpo_verl_patched__"


def is_patched(obj: Any) -> bool:
    """Whether ``obj`` is one of ours."""
    return bool(getattr(obj, MARK, False))


def mark(obj: Any) -> Any:
    """Mark ``obj`` as ours and return it."""
    setattr(obj, MARK, True)
    return obj


def wrap_once(owner: Any, attr: str, wrap: Callable[[Any], Any]) -> None:
    """``owner.attr = wrap(owner.attr)``, unless it is ours already."""
    current = getattr(owner, attr)
    if not is_patched(current):
        setattr(owner, attr, mark(wrap(current)))
