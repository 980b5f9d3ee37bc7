"""Reward worker process: ``python -m gdpo_verl.rewards._worker READ_FD WRITE_FD`` (started by :mod:`.pool`).

Receives ``(task_id, payload, calls, start)``, sends ``(task_id, -2, ...)`` when a function is not imported yet,
imports the calls' functions, sends ``(task_id, -1, ...)`` (the parent starts the per-call clock then), runs
``calls[start:]`` in order in its main thread (libraries that time themselves out with SIGALRM work there) and
sends one ``(task_id, index, ok, value)`` per call. Exits when the parent closes its end (its idle sandbox servers
are stopped on the way out).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from .ground_truth import plain
from .suites import accepts, resolve

_cache: dict[str, tuple[Callable[..., Any], bool]] = {}


def _resolve(fn_spec: str) -> tuple[Callable[..., Any], bool]:
    if fn_spec not in _cache:
        fn = resolve(fn_spec)
        _cache[fn_spec] = (fn, accepts(fn, "num_tokens"))
    return _cache[fn_spec]


def evaluate(fn_spec: str, payload: dict[str, Any], kwargs: dict[str, Any]) -> float:
    """Call one reward function on one sample and return its value as a float (NaN allowed)."""
    fn, wants_tokens = _resolve(fn_spec)
    args = {k: payload.get(k) for k in ("data_source", "solution_str", "extra_info")}
    args["ground_truth"] = plain(payload.get("ground_truth"))
    if wants_tokens and "num_tokens" not in kwargs:
        args["num_tokens"] = payload.get("num_tokens")
    result = fn(**args, **kwargs)
    if isinstance(result, dict):
        result = result["score"]
    if result is None or isinstance(result, str):
        raise TypeError(f"reward function returned {type(result).__name__}, expected a number")
    value = float(result)
    if math.isinf(value):
        raise ValueError(f"reward function returned {value}")
    return value


def describe_exception(e: BaseException) -> tuple[str, str]:
    """(type name, message) of ``e``, even when its ``__str__`` raises (that is the function's error, not ours)."""
    cause = type(e).__name__[:200]
    try:
        message = str(e)
    except BaseException as inner:  # noqa: BLE001
        message = f"<str() of this {cause} raised {type(inner).__name__}>"
    return cause, message[:500]


def main() -> None:
    rd, wr = Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False)
    while True:
        try:
            task_id, payload, calls, start = rd.recv()
        except (EOFError, OSError):
            return
        if any(fn_spec not in _cache for fn_spec, _ in calls[start:]):
            wr.send((task_id, -2, True, 0.0))  # read; the parent gives first imports a longer grace
        for fn_spec, _ in calls[start:]:
            try:
                _resolve(fn_spec)  # imports happen before the per-call clock starts
            except BaseException:  # noqa: BLE001 - reported by the call itself
                pass
        wr.send((task_id, -1, True, 0.0))
        for i in range(start, len(calls)):
            fn_spec, kwargs = calls[i]
            try:
                msg = (task_id, i, True, evaluate(fn_spec, payload, kwargs))
            except BaseException as e:  # noqa: BLE001 - any failure is a NaN for that key, never a dead worker
                msg = (task_id, i, False, describe_exception(e))
            wr.send(msg)


if __name__ == "__main__":
    main()
