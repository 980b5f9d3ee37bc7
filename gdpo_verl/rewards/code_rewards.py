"""Code suite (paper: Eurus-2-RL code): ``pass_rate`` ∈ [0,1], ``bug_free`` ∈ {0,1}, and the token ``length``.

The response's last fenced code block (```python … ``` or ``` … ```) is the solution. ``ground_truth`` (a JSON string
or an object) is one of:
- ``{"inputs": [...], "outputs": [...]}``: stdin/stdout tests (whitespace-insensitive per line, floats to 1e-6);
- the same with ``"fn_name"``: call-based tests (``inputs[i]`` is the argument list; a ``class Solution`` method works);
- ``["assert f(1) == 2", ...]`` or ``{"asserts": [...]}``: assert statements run after the solution.
All tests of one response run in one sandbox (:mod:`.sandbox`), each in its own forked process.
``bug_free`` is 1 when the code compiles and every test run exits normally (a wrong answer is not a bug; an
exception, a limit hit or a timeout is).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .length import length as length  # noqa: PLC0414 - re-exported as code.length
from .sandbox import Limits, run_python

HARNESS = Path(__file__).with_name("_sandbox_harness.py")
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)


@dataclass(frozen=True)
class TestReport:
    status: tuple[str, ...]  # pass | wrong | error | timeout, one per test
    compile_error: str | None = None
    sandbox_error: str | None = None

    @property
    def pass_rate(self) -> float:
        return sum(s == "pass" for s in self.status) / len(self.status) if self.status else 0.0

    @property
    def bug_free(self) -> bool:
        return (
            self.compile_error is None
            and self.sandbox_error is None
            and all(s in ("pass", "wrong") for s in self.status)
        )


def extract_code(text: str) -> str | None:
    """The last fenced block, preferring python-tagged ones; None when the response has no code block."""
    blocks = _FENCE.findall(text)
    if not blocks:
        return None
    tagged = [body for lang, body in blocks if lang.lower() in ("python", "py", "python3")]
    return (tagged or [body for _, body in blocks])[-1]


def parse_tests(ground_truth) -> dict:
    """Normalize a ground truth into the harness's spec (without per_test_s). Raises ValueError if unusable."""
    gt = ground_truth
    if isinstance(gt, (bytes, str)):
        gt = json.loads(gt)
    if isinstance(gt, (list, tuple)) and all(isinstance(a, str) for a in gt):
        gt = {"asserts": list(gt)}
    if not isinstance(gt, dict):
        raise ValueError(f"unsupported code ground truth of type {type(gt).__name__}")
    if gt.get("asserts") or gt.get("test_list"):
        return {"mode": "assert", "asserts": list(gt.get("asserts") or gt["test_list"])}
    inputs, outputs = gt.get("inputs"), gt.get("outputs")
    if not isinstance(inputs, list) or not isinstance(outputs, list) or len(inputs) != len(outputs) or not inputs:
        raise ValueError("code ground truth needs equally long, non-empty 'inputs' and 'outputs' lists")
    mode = "call" if gt.get("fn_name") else "stdio"
    return {"mode": mode, "inputs": inputs, "outputs": outputs, "fn_name": gt.get("fn_name")}


def _subset(spec: dict, max_tests: int | None) -> dict:
    if not max_tests:
        return spec
    spec = dict(spec)
    for k in ("inputs", "outputs", "asserts"):
        if spec.get(k) is not None:
            spec[k] = spec[k][:max_tests]
    return spec


@lru_cache(maxsize=64)
def _run_cached(code: str, tests_json: str, limits: Limits) -> TestReport:
    spec = json.loads(tests_json)
    n = len(spec["asserts"] if spec["mode"] == "assert" else spec["inputs"])
    res = run_python(HARNESS.read_text(), limits=limits, files={"solution.py": code, "tests.json": tests_json})
    for line in reversed(res.stdout.splitlines()):
        if line.startswith("GDPO_HARNESS_RESULT "):
            out = json.loads(line[len("GDPO_HARNESS_RESULT ") :])
            status = tuple(out["status"]) + ("timeout",) * (n - len(out["status"]))
            return TestReport(status=status, compile_error=out["compile_error"])
    why = "timeout" if res.timed_out else "output limit" if res.output_truncated else f"exit {res.returncode}"
    return TestReport(status=("timeout" if res.timed_out else "error",) * n, sandbox_error=why)


def run_tests(
    solution_str: str, ground_truth, per_test_s: float = 4.0, memory_mb: int = 1024, max_tests: int | None = None
) -> TestReport | None:
    """Run the response's code on the tests; None when the response has no code block."""
    code = extract_code(solution_str)
    if code is None:
        return None
    spec = _subset(parse_tests(ground_truth), max_tests)
    spec["per_test_s"] = float(per_test_s)
    n = len(spec["asserts"] if spec["mode"] == "assert" else spec["inputs"])
    limits = Limits(wall_s=n * (per_test_s + 1.0) + 5.0, cpu_s=int(n * (per_test_s + 1.0) + 5), memory_mb=memory_mb)
    return _run_cached(code, json.dumps(spec, sort_keys=True), limits)


def pass_rate(
    solution_str: str, ground_truth, per_test_s: float = 4.0, memory_mb: int = 1024, max_tests: int | None = None, **_
) -> float:
    """Fraction of tests passed (0 without a code block)."""
    report = run_tests(solution_str, ground_truth, per_test_s, memory_mb, max_tests)
    return 0.0 if report is None else report.pass_rate


def bug_free(
    solution_str: str, ground_truth, per_test_s: float = 4.0, memory_mb: int = 1024, max_tests: int | None = None, **_
) -> float:
    """1.0 if the code compiles and runs every test without a runtime error, limit hit or timeout, else 0.0."""
    report = run_tests(solution_str, ground_truth, per_test_s, memory_mb, max_tests)
    return 0.0 if report is None else float(report.bug_free)
