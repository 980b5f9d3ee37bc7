"""What runs in a sandboxed process: one test case of one program (stdlib only, loaded before any untrusted code).

The process holds the program and this case's input, never an expected output. It reports through fd 3 one JSON
record ``{"value": <encoded>}``, ``{"error": ...}`` or ``{"compile_error": ...}``; the trusted parent decides pass or
fail. Anything the program writes to fd 3 itself is no more than an answer it computed: a second record, or bytes
that do not parse as one record, make the case fail.

Modes: ``script`` and ``stdio`` run the program as ``__main__`` (stdin is the case input); ``call`` runs it as a
module and calls ``fn_name(*args)`` (a ``class Solution`` method works); ``expr`` runs it as ``__main__`` and
evaluates each expression of the case (the parts of an assert that name the program's functions).
"""

from __future__ import annotations

import builtins
import json
import math
import os
import sys

RECORD_FD = 3
_write = os.write
_exit = os._exit
_dumps = json.dumps
MAX_DEPTH = 64


class NotPlainData(TypeError):
    """A returned value outside the plain data the parent accepts."""


def encode(value, depth: int = 0):
    """Plain data as JSON: None/bool/int/str/list as is, finite float as is; tuple, set, dict and non-finite
    floats tagged. Anything else (a subclass included) raises NotPlainData."""
    if depth > MAX_DEPTH:
        raise NotPlainData("value nested too deep")
    t = type(value)
    if value is None or t is bool or t is int or t is str:
        return value
    if t is float:
        return value if math.isfinite(value) else {"f": repr(value)}
    if t is list:
        return [encode(v, depth + 1) for v in value]
    if t is tuple:
        return {"t": [encode(v, depth + 1) for v in value]}
    if t is set or t is frozenset:
        return {"s": [encode(v, depth + 1) for v in value]}
    if t is dict:
        return {"d": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]}
    raise NotPlainData(f"{t.__name__} is not plain data")


def _record(obj) -> None:
    data = memoryview(_dumps(obj).encode())
    while data:
        data = data[_write(RECORD_FD, data) :]


def _flush() -> None:
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except Exception:  # noqa: BLE001, S110 - the program may have closed or replaced them
            pass


def _describe(e: BaseException) -> str:
    try:
        return f"{type(e).__name__}: {e}"[:300]
    except Exception:  # noqa: BLE001 - a hostile __str__
        return "error"


def run_case(source: str, mode: str, case: dict, fn_name: str | None) -> None:
    """Compile and run; never returns."""
    try:
        code = compile(source, "solution.py", "exec")
    except BaseException as e:  # noqa: BLE001 - SyntaxError, ValueError (NUL bytes), RecursionError, MemoryError
        _record({"compile_error": _describe(e)})
        _exit(1)
    ns: dict = {"__name__": "solution" if mode == "call" else "__main__", "__builtins__": builtins}
    status = 0
    try:
        exec(code, ns)
        if mode == "call":
            fn = ns.get(fn_name) if fn_name in ns else getattr(ns["Solution"](), fn_name)
            args = case["args"]
            out = fn(*args) if isinstance(args, list) else fn(args)
            _record({"value": encode(out)})
        elif mode == "expr":
            values = [encode(eval(compile(e, "<test>", "eval"), ns)) for e in case["exprs"]]  # noqa: S307
            _record({"value": values})
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except NotPlainData as e:
        _record({"unencodable": _describe(e)})
    except BaseException as e:  # noqa: BLE001 - the program's own error
        _record({"error": _describe(e)})
        try:
            _write(2, (_describe(e) + "\n").encode())
        except OSError:
            pass
        status = 1
    _flush()
    _exit(status & 0xFF)
