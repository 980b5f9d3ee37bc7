"""Built-in reward functions (``suite.name``), the suites' default reward lists, and reward-function resolution.

A reward function is called with keywords ``data_source, solution_str, ground_truth, extra_info`` (verl's
``compute_score`` convention), plus ``num_tokens`` (the response's token count) when it accepts it, plus the
reward's configured ``kwargs``. It returns a number, a bool, or a dict with a ``"score"`` entry.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
from collections.abc import Callable
from typing import Any

_PKG = "gdpo_verl.rewards"
BUILTINS: dict[str, str] = {
    "tool.format": "tool_calling:format",
    "tool.correctness": "tool_calling:correctness",
    "math.correct": "math_rewards:correct",
    "math.length": "math_rewards:length",
    "code.pass_rate": "code_rewards:pass_rate",
    "code.bug_free": "code_rewards:bug_free",
    "code.length": "code_rewards:length",
    "gsm8k.correct": "gsm8k:correct",
    "gsm8k.integer": "gsm8k:integer",
    "gsm8k.format": "gsm8k:format",
}

# Default reward lists per suite (manager config entries). Conditioned variants are one override away.
SUITES: dict[str, list[dict[str, Any]]] = {
    "tool": [{"name": "format", "fn": "tool.format"}, {"name": "correctness", "fn": "tool.correctness"}],
    "math": [
        {"name": "correct", "fn": "math.correct"},
        {"name": "length", "fn": "math.length", "kwargs": {"max_tokens": 4000}},
    ],
    "code": [
        {"name": "pass_rate", "fn": "code.pass_rate", "timeout_s": 120},
        {
            "name": "length",
            "fn": "code.length",
            "kwargs": {"max_tokens": 4000},
            "condition": {"on": "pass_rate", "threshold": 1.0},
        },
        {"name": "bug_free", "fn": "code.bug_free", "timeout_s": 120},
    ],
    "gsm8k": [
        {"name": "correct", "fn": "gsm8k.correct"},
        {"name": "integer", "fn": "gsm8k.integer"},
        {"name": "format", "fn": "gsm8k.format"},
    ],
}


def _load_file(path: str) -> Any:
    name = "gdpo_user_reward_" + str(abs(hash(os.path.abspath(path))))
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load reward file {path!r}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def resolve(fn: str) -> Callable[..., Any]:
    """``suite.name`` (built-in), ``package.module:function`` or ``/path/to/file.py:function`` -> the function."""
    if fn in BUILTINS:
        module_name, attr = BUILTINS[fn].split(":")
        module = importlib.import_module(f"{_PKG}.{module_name}")
    elif ":" in fn:
        where, attr = fn.rsplit(":", 1)
        module = _load_file(where) if where.endswith(".py") or os.sep in where else importlib.import_module(where)
    else:
        raise ValueError(
            f"unknown reward function {fn!r}: use one of {sorted(BUILTINS)}, 'module:function' or "
            "'/path/file.py:function'"
        )
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(f"reward function {fn!r}: {module.__name__} has no attribute {attr!r}") from None


def check_fn_spec(fn: str) -> None:
    """Cheap validation at config time (no import of user code): the spec's shape and, for files, existence."""
    if fn in BUILTINS:
        return
    if ":" not in fn:
        resolve(fn)  # raises with the list of built-ins
    where = fn.rsplit(":", 1)[0]
    if (where.endswith(".py") or os.sep in where) and not os.path.isfile(where):
        raise ValueError(f"reward function {fn!r}: file {where!r} does not exist")


def accepts(fn: Callable[..., Any], name: str) -> bool:
    """Whether ``fn`` takes keyword ``name`` (explicitly or via ``**kwargs``)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind is p.VAR_KEYWORD or p.name == name for p in params)
