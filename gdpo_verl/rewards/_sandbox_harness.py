"""Test harness, copied into the sandbox's work directory and run there as the program (stdlib only).

Reads ``solution.py`` and ``tests.json`` ({"mode": "stdio"|"call"|"assert", "inputs", "outputs", "fn_name",
"asserts", "per_test_s"}); runs every test in a forked child (stdin from a file, stdout to a file) with its own CPU
and wall budget; prints one ``GDPO_HARNESS_RESULT <json>`` line. The untrusted code runs only in the children.
"""

from __future__ import annotations

import json
import math
import os
import resource
import signal
import sys
import time

MARK = "GDPO_HARNESS_RESULT "
_CAP = 1 << 20


def _norm_lines(text: str) -> list[str]:
    return [ln.rstrip() for ln in text.strip().splitlines()]


def _close(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    return a == b


def _stdio_equal(got: str, want) -> bool:
    want = "\n".join(want) if isinstance(want, list) else str(want)
    g, w = _norm_lines(got), _norm_lines(want)
    if g == w:
        return True
    gt, wt = got.split(), want.split()
    if len(gt) != len(wt):
        return False
    for x, y in zip(gt, wt, strict=True):
        if x == y:
            continue
        try:
            if not math.isclose(float(x), float(y), rel_tol=1e-6, abs_tol=1e-6):
                return False
        except ValueError:
            return False
    return True


def _call_equal(got_json: str, want) -> bool:
    try:
        got = json.loads(got_json)
    except ValueError:
        return False
    return _close(got, want) or (isinstance(want, list) and len(want) == 1 and _close(got, want[0]))


def _child(code, spec: dict, i: int) -> None:
    """In the forked child: limits, redirections, run. Never returns."""
    per = spec["per_test_s"]
    resource.setrlimit(resource.RLIMIT_CPU, (max(1, math.ceil(per)), max(1, math.ceil(per))))
    with open(f"in_{i}.txt", "rb") as f:
        os.dup2(f.fileno(), 0)
    out = os.open(f"out_{i}.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(out, 1)
    sys.stdin = open(0, closefd=False)
    sys.stdout = open(1, "w", closefd=False)
    try:
        ns: dict = {"__name__": "__main__"}
        if spec["mode"] == "call":
            ns["__name__"] = "solution"
            exec(code, ns)
            name = spec["fn_name"]
            fn = ns.get(name) or getattr(ns["Solution"](), name)
            args = spec["inputs"][i]
            result = fn(*args) if isinstance(args, list) else fn(args)
            sys.stdout.write(json.dumps(result, default=list))
        else:
            exec(code, ns)
            if spec["mode"] == "assert":
                exec(compile(spec["asserts"][i], "<test>", "exec"), ns)
        sys.stdout.flush()
    except SystemExit as e:
        sys.stdout.flush()
        os._exit(e.code if isinstance(e.code, int) else (0 if e.code is None else 1))
    except BaseException as e:  # noqa: BLE001 - a runtime error in the solution
        sys.stdout.flush()
        os.write(2, f"{type(e).__name__}: {e}\n"[:500].encode())
        os._exit(1)
    os._exit(0)


def _run_one(code, spec: dict, i: int) -> str:
    pid = os.fork()
    if pid == 0:
        try:
            _child(code, spec, i)
        finally:
            os._exit(1)
    deadline = time.monotonic() + spec["per_test_s"] + 1.0
    while True:
        got, status = os.waitpid(pid, os.WNOHANG)
        if got:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout"
        time.sleep(0.002)
    if os.WIFSIGNALED(status):
        return "timeout" if os.WTERMSIG(status) in (signal.SIGXCPU, signal.SIGKILL) else "error"
    if os.WEXITSTATUS(status) != 0:
        return "error"
    with open(f"out_{i}.txt", encoding="utf-8", errors="replace") as f:
        got_out = f.read(_CAP)
    if spec["mode"] == "assert":
        return "pass"
    equal = _call_equal if spec["mode"] == "call" else _stdio_equal
    return "pass" if equal(got_out, spec["outputs"][i]) else "wrong"


def main() -> None:
    with open("tests.json") as f:
        spec = json.load(f)
    with open("solution.py", encoding="utf-8") as f:
        source = f.read()
    n = len(spec["asserts"] if spec["mode"] == "assert" else spec["inputs"])
    try:
        code = compile(source, "solution.py", "exec")
    except (SyntaxError, ValueError) as e:
        print(MARK + json.dumps({"compile_error": f"{type(e).__name__}: {e}", "status": ["error"] * n}))
        return
    status = []
    for i in range(n):
        stdin = spec["inputs"][i] if spec["mode"] == "stdio" else ""
        with open(f"in_{i}.txt", "w") as f:
            f.write(stdin if isinstance(stdin, str) else "\n".join(map(str, stdin)))
        status.append(_run_one(code, spec, i))
    sys.stdout.write(MARK + json.dumps({"compile_error": None, "status": status}) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
