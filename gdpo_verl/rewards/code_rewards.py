"""Code suite (paper: Eurus-2-RL code): ``pass_rate`` ∈ [0,1], ``bug_free`` ∈ {0,1}, and the token ``length``.

The response's last fenced code block (```python … ``` or ``` … ```) is the solution. ``ground_truth`` (a JSON string
or an object) is one of:
- ``{"inputs": [...], "outputs": [...]}``: stdin/stdout tests (whitespace-insensitive per line, floats to 1e-6);
- the same with ``"fn_name"``: call-based tests (``inputs[i]`` is the argument list; a ``class Solution`` method works);
- ``["assert f(1) == 2", ...]`` or ``{"asserts": [...]}``: assert statements (see :mod:`.code_verdict`).
Each test case runs in its own sandboxed process that receives only the program and that case's input; the verdict
is made here (:mod:`.code_verdict`). ``bug_free`` is 1 when the code compiles and every test run ends normally (a
wrong answer is not a bug; an exception, a limit hit or a timeout is).

Backends (kwarg ``backend``): ``local`` (the embedded sandbox, :mod:`.sandbox`) or ``sandbox_fusion`` (a
SandboxFusion service at ``sandbox_fusion_url``, ``concurrency`` requests at a time, ``request_timeout_s`` each).
"""

from __future__ import annotations

import json
import logging
import math
import re
import signal
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from . import code_verdict as v
from .length import length as length  # noqa: PLC0414 - re-exported as code.length
from .sandbox import CaseResult, Limits, run_cases

logger = logging.getLogger("gdpo_verl.rewards")
MAX_SCAN_CHARS = 200_000  # only the response's last 200k characters are searched for a code block
_TAG = re.compile(r"[ \t]*([A-Za-z0-9_+-]*)")
_PY_TAGS = ("python", "py", "python3")
BACKENDS = ("local", "sandbox_fusion")
MAX_TOTAL_S = 45.0  # default time budget of all tests of one response: with the 15 s margin, fits a 60 s timeout
unsupported_tests: Counter[str] = Counter()  # why an assert could not be judged -> count (this process)
verdict_errors: Counter[str] = Counter()  # exceptions the verdict raised on a program's output -> count


@dataclass(frozen=True)
class TestReport:
    status: tuple[str, ...]  # pass | wrong | error | timeout | unsupported, one per test
    compile_error: str | None = None
    first_error: str | None = None  # the end of the first failing case's stderr, for diagnostics

    @property
    def pass_rate(self) -> float:
        return sum(s == "pass" for s in self.status) / len(self.status) if self.status else 0.0

    @property
    def bug_free(self) -> bool:
        return self.compile_error is None and all(s in ("pass", "wrong", "unsupported") for s in self.status)


def extract_code(text: str) -> str | None:
    """The last fenced block, preferring python-tagged ones; None when the response has no closed code block.
    Linear time: one left-to-right pass over the last ``MAX_SCAN_CHARS`` characters."""
    text = text[-MAX_SCAN_CHARS:]
    blocks: list[tuple[str, str]] = []
    pos = 0
    while True:
        start = text.find("```", pos)
        if start < 0:
            break
        nl = text.find("\n", start + 3)
        if nl < 0:
            break
        end = text.find("```", nl + 1)
        if end < 0:
            break
        tag = _TAG.match(text, start + 3, nl).group(1)
        blocks.append((tag.lower(), text[nl + 1 : end]))
        pos = end + 3
    if not blocks:
        return None
    tagged = [body for tag, body in blocks if tag in _PY_TAGS]
    return (tagged or [body for _, body in blocks])[-1]


def parse_tests(ground_truth) -> dict:
    """Normalize a ground truth into ``{"mode", ...}``. Raises ValueError if unusable."""
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


def _judge(mode: str, r: CaseResult, expected) -> str:
    """One case's status from what the sandbox returned; ``expected`` never left this process. Whatever the program
    returned, this gives a status: an output the verdict cannot handle is the program's ``error``, never a raise."""
    try:
        return _judge_case(mode, r, expected)
    except v.Unsupported as e:  # the test's own form
        _count_unsupported(str(e))
        return "unsupported"
    except v.TooLarge:  # the program's values pushed the parent-side evaluation past its bounds
        return "error"
    except Exception as e:  # noqa: BLE001 - any other failure on a program's output scores it 0, counted
        kind = type(e).__name__
        verdict_errors[kind] += 1
        if verdict_errors[kind] == 1:
            logger.warning("code suite: the verdict failed on a program output (%s: %.200s); scored as error", kind, e)
        return "error"


def _judge_case(mode: str, r: CaseResult, expected) -> str:
    if r.timed_out or r.signal in (signal.SIGXCPU, signal.SIGKILL):
        return "timeout"
    if r.output_truncated or r.signal is not None or r.failed:
        return "error"
    if mode == "stdio":
        return "error" if r.exit != 0 else ("pass" if v.stdio_equal(r.stdout, expected) else "wrong")
    rec = v.decode_record(r.record)
    if rec is None or r.exit != 0 or "error" in rec or "compile_error" in rec:
        return "error"
    if "unencodable" in rec:
        return "wrong"
    try:
        got = v.decode_value(rec["value"])
    except (ValueError, RecursionError):
        return "wrong"
    if mode == "call":
        return "pass" if v.call_equal(got, expected) else "wrong"
    if not isinstance(got, list):
        return "wrong"
    return "pass" if v.condition_holds(expected, got) else "wrong"


def _compile_error(results: list[CaseResult]) -> str | None:
    for r in results:
        rec = v.decode_record(r.record)
        if rec is not None and "compile_error" in rec:
            return str(rec["compile_error"])
    return None


def _count_unsupported(why: str) -> None:
    unsupported_tests[why] += 1
    if unsupported_tests[why] == 1:
        logger.warning("code suite: an assert test cannot be judged safely (%s); it counts as failed", why)


def _plans(asserts: list[str]) -> list[v.AssertPlan | None]:
    plans: list[v.AssertPlan | None] = []
    for a in asserts:
        try:
            plans.append(v.plan_assert(a))
        except v.Unsupported as e:
            _count_unsupported(str(e))
            plans.append(None)
    return plans


def execute(code: str, mode: str, cases: list[dict], limits: Limits, fn_name: str | None, backend: tuple):
    if backend[0] == "local":  # ("local", *packages the code may import)
        return run_cases(code, mode, cases, limits, fn_name, packages=backend[1:])
    from .sandbox.fusion import FusionClient

    return FusionClient.get(*backend[1:]).run_cases(code, mode, cases, limits, fn_name)


@lru_cache(maxsize=64)
def _run_cached(code: str, tests_json: str, limits: Limits, backend: tuple) -> TestReport:
    spec = json.loads(tests_json)
    mode = spec["mode"]
    if mode == "assert":
        plans = _plans(spec["asserts"])
        runnable = [i for i, p in enumerate(plans) if p is not None]
        cases = [{"exprs": list(plans[i].exprs)} for i in runnable]
        expected = [plans[i] for i in runnable]
        run_mode = "expr"
    else:
        n = len(spec["inputs"])
        runnable = list(range(n))
        if mode == "stdio":
            cases = [{"stdin": x if isinstance(x, str) else "\n".join(map(str, x))} for x in spec["inputs"]]
        else:
            cases = [{"args": x} for x in spec["inputs"]]
        expected = spec["outputs"]
        run_mode = mode
    status = ["unsupported"] * (len(spec["asserts"]) if mode == "assert" else len(runnable))
    results = execute(code, run_mode, cases, limits, spec.get("fn_name"), backend) if cases else []
    for i, r, want in zip(runnable, results, expected, strict=True):
        status[i] = _judge(run_mode if mode == "assert" else mode, r, want)
    failing = [r.stderr.strip()[-300:] for i, r in zip(runnable, results, strict=True) if status[i] == "error"]
    return TestReport(tuple(status), _compile_error(results), failing[0] if failing else None)


def _backend(
    backend: str, sandbox_fusion_url: str | None, concurrency: int, request_timeout_s: float, packages
) -> tuple:
    if backend == "local":
        names = sorted({str(p) for p in packages or ()})
        bad = [n for n in names if not n.isidentifier()]
        if bad:
            raise ValueError(f"code suite: sandbox_packages {bad}: give top-level package names, e.g. [numpy]")
        return ("local", *names)
    if packages:
        raise ValueError("code suite: sandbox_packages applies to backend=local (a SandboxFusion service has its own)")
    if backend == "sandbox_fusion":
        if not sandbox_fusion_url:
            raise ValueError("code suite: backend=sandbox_fusion needs kwargs.sandbox_fusion_url")
        return ("sandbox_fusion", str(sandbox_fusion_url), int(concurrency), float(request_timeout_s))
    raise ValueError(f"code suite: backend={backend!r}; use one of {list(BACKENDS)}")


def run_tests(
    solution_str: str,
    ground_truth,
    per_test_s: float = 4.0,
    memory_mb: int = 1024,
    max_tests: int | None = None,
    backend: str = "local",
    sandbox_fusion_url: str | None = None,
    concurrency: int = 8,
    request_timeout_s: float = 30.0,
    max_total_s: float = MAX_TOTAL_S,
    sandbox_packages: list[str] | tuple[str, ...] = (),
) -> TestReport | None:
    """Run the response's code on the tests; None when the response has no code block. ``max_total_s`` bounds the
    time of all its cases together (tests past it count as timed out), so that a program that times out on many
    tests scores 0 instead of running into the manager's per-call timeout (NaN). ``sandbox_packages``: installed
    top-level packages the code may import (local backend; none by default: the standard library only)."""
    backend_key = _backend(backend, sandbox_fusion_url, concurrency, request_timeout_s, sandbox_packages)
    code = extract_code(solution_str)
    if code is None:
        return None
    spec = _subset(parse_tests(ground_truth), max_tests)
    limits = Limits(
        wall_s=per_test_s + 1.0, cpu_s=max(1, math.ceil(per_test_s)), memory_mb=memory_mb, total_s=float(max_total_s)
    )
    return _run_cached(code, json.dumps(spec, sort_keys=True), limits, backend_key)


_RUN_KWARGS = frozenset(
    {
        "per_test_s",
        "memory_mb",
        "max_tests",
        "backend",
        "sandbox_fusion_url",
        "concurrency",
        "request_timeout_s",
        "max_total_s",
        "sandbox_packages",
    }
)
_CALL_KWARGS = frozenset({"data_source", "extra_info", "num_tokens"})  # what the manager passes every function


def _backend_kwargs(kwargs: dict) -> dict:
    return {
        "backend": kwargs.get("backend", "local"),
        "sandbox_fusion_url": kwargs.get("sandbox_fusion_url"),
        "concurrency": kwargs.get("concurrency", 8),
        "request_timeout_s": kwargs.get("request_timeout_s", 30.0),
        "packages": kwargs.get("sandbox_packages", ()),
    }


def _run_kwargs(kwargs: dict) -> dict:
    unknown = set(kwargs) - _RUN_KWARGS - _CALL_KWARGS
    if unknown:
        raise TypeError(f"code suite: unknown kwargs {sorted(unknown)}; allowed: {sorted(_RUN_KWARGS)}")
    return {k: x for k, x in kwargs.items() if k in _RUN_KWARGS}


def pass_rate(solution_str: str, ground_truth, **kwargs) -> float:
    """Fraction of tests passed (0 without a code block). kwargs: see :func:`run_tests`."""
    report = run_tests(solution_str, ground_truth, **_run_kwargs(kwargs))
    return 0.0 if report is None else report.pass_rate


def bug_free(solution_str: str, ground_truth, **kwargs) -> float:
    """1.0 if the code compiles and runs every test without a runtime error, limit hit or timeout, else 0.0."""
    report = run_tests(solution_str, ground_truth, **_run_kwargs(kwargs))
    return 0.0 if report is None else float(report.bug_free)


CODE_FNS = frozenset({"code.pass_rate", "code.bug_free"})
_SELF_TEST_GT = {"inputs": ["2 3\n", "-4 9\n"], "outputs": ["5\n", "5\n"]}
_SELF_TEST_GOOD = (  # imports what solutions commonly import, plus modules the sandbox server does not preload
    "```python\nimport sys, math, heapq, bisect, itertools, collections, functools, fractions, decimal\n"
    "import textwrap, pprint, calendar\na, b = map(int, sys.stdin.read().split())\nprint(a + b)\n```"
)
_SELF_TEST_BAD = "```python\na, b = map(int, input().split())\nprint(a - b)\n```"


def self_test(**kwargs) -> None:
    """Score a known-good and a known-bad program (about a second); raise RuntimeError naming what is wrong."""
    try:
        good = run_tests(_SELF_TEST_GOOD, _SELF_TEST_GT, **kwargs)
        bad = run_tests(_SELF_TEST_BAD, _SELF_TEST_GT, **kwargs)
    except Exception as e:  # noqa: BLE001 - any failure to run code at all stops the run
        raise RuntimeError(f"code sandbox self-test: the sandbox cannot run code: {type(e).__name__}: {e}") from e
    if good is None or good.status != ("pass", "pass"):
        raise RuntimeError(
            f"code sandbox self-test: a correct program did not pass (status {good and good.status}, compile error "
            f"{good and good.compile_error}, error {good and good.first_error!r}): every code response would score 0"
        )
    if bad is None or bad.pass_rate != 0.0 or not bad.bug_free:
        raise RuntimeError(f"code sandbox self-test: a wrong program was not judged wrong (status {bad.status})")


TIMEOUT_MARGIN_S = 15.0  # start-up and scheduling slack between the code budget and the manager's per-call timeout


def startup_check(rewards, allow_weak_sandbox: bool = False, default_timeout_s: float | None = None) -> None:
    """At manager start, when a code reward is configured: record the weak-sandbox choice, refuse weak isolation
    unless allowed, refuse a per-call timeout a program could run into, log what isolation the sandbox has, and run
    :func:`self_test` for each distinct kwargs."""
    from . import sandbox

    specs = [r for r in rewards if r.fn in CODE_FNS]
    if not specs:
        return
    sandbox.allow_weak(allow_weak_sandbox)
    seen: list[dict] = []
    for s in specs:
        kwargs = _run_kwargs(dict(s.kwargs))  # a misspelt kwarg stops the run here, not at the first rollout
        timeout = s.timeout_s or default_timeout_s
        budget = float(kwargs.get("max_total_s", MAX_TOTAL_S))
        if timeout is not None and timeout < budget + TIMEOUT_MARGIN_S:
            raise ValueError(
                f"reward {s.name!r}: timeout_s={timeout:g} is shorter than its code budget max_total_s={budget:g} + "
                f"{TIMEOUT_MARGIN_S:g} s: a program that runs out the budget would hit the timeout and score NaN "
                f"instead of 0. Raise timeout_s or lower kwargs.max_total_s"
            )
        if kwargs in seen:
            continue
        seen.append(kwargs)
        if kwargs.get("backend", "local") == "local":
            sandbox.require_isolation()
            try:
                info = sandbox.describe(_backend(**_backend_kwargs(kwargs))[1:])
            except sandbox.SandboxUnavailable as e:
                raise RuntimeError(f"code sandbox self-test: the sandbox cannot run code: {e}") from e
            weak = info["isolation"] != "namespaces" or info["cgroup"] is None or not info["seccomp"]
            (logger.warning if weak else logger.info)(
                "code sandbox: isolation=%s, cgroup=%s, seccomp=%s%s",
                info["isolation"],
                f"v{info['cgroup']}" if info["cgroup"] else "none (rlimits only)",
                info["seccomp"],
                " (weak fallback allowed by reward.gdpo_multi.allow_weak_sandbox)"
                if info["isolation"] != "namespaces"
                else "",
            )
        self_test(**kwargs)


class CodeRewardsFailing(RuntimeError):
    """Too many code rewards of a window were NaN: the sandbox fails (a program cannot cause a NaN)."""


class NanGuard:
    """Counts NaN code rewards over windows of ``window`` scored samples and raises CodeRewardsFailing when more
    than ``max_share`` of a window's code reward values are NaN (``max_share`` 1 never stops)."""

    def __init__(self, max_share: float, window: int) -> None:
        self.max_share, self.window = max_share, window
        self._reset()

    def _reset(self) -> None:
        self.samples = self.values = self.nans = 0
        self.causes: Counter[str] = Counter()
        self.last = ""

    def record(self, outcomes: list[tuple[str, str | None, str | None]]) -> None:
        """One sample's code rewards as (name, NaN cause or None, message)."""
        if not outcomes:
            return
        self.samples += 1
        self.values += len(outcomes)
        for name, cause, msg in outcomes:
            if cause is not None:
                self.nans += 1
                self.causes[f"{name}: {cause}"] += 1
                self.last = f"{name}: {cause}: {msg}"
        if self.samples < self.window:
            return
        nans, values, causes, last = self.nans, self.values, dict(self.causes), self.last
        self._reset()
        if nans > self.max_share * values:
            raise CodeRewardsFailing(
                f"{nans} of {values} code reward values of the last {self.window} samples are NaN ({causes}; last: "
                f"{last[:300]}). A NaN code reward means the sandbox failed (it could not start or died), which no "
                "program can cause; training on would drop these samples silently. Fix the sandbox (see the first "
                "WARNING of this cause), or raise reward.gdpo_multi.max_code_nan_share (1 never stops)"
            )
