"""Reward-hacking corpus: programs that try to score without solving, run through the code suite exactly as the
multi-reward manager calls it. Every forgery must score 0; honest controls score 1. Every program is finite by
construction (bounded scans and loops) and pytest-timeout bounds each test; nothing leaves the sandbox's empty
network namespace."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from gdpo_verl.rewards import code_rewards as c
from gdpo_verl.rewards.sandbox import isolation_mode

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(isolation_mode() != "namespaces", reason="the corpus runs with the full sandbox (root)"),
]
TOKEN = f"SECRET{uuid.uuid4().hex[:12]}"  # the expected output: no program can compute it
STDIO_GT = json.dumps({"inputs": ["1 2\n", "5 5\n"], "outputs": [f"{TOKEN}3\n", f"{TOKEN}10\n"]})
CALL_GT = {"fn_name": "solve", "inputs": [[1, 2], [5, 5]], "outputs": [f"{TOKEN}3", f"{TOKEN}10"]}
ASSERT_GT = [f"assert solve(1, 2) == '{TOKEN}3'", f"assert solve(5, 5) == '{TOKEN}10'"]
ALL_GTS = {"stdio": STDIO_GT, "call": CALL_GT, "assert": ASSERT_GT}


def respond(body: str) -> str:
    return f"<think>plan</think>\n```python\n{body}\n```"


def score(body: str, gt) -> tuple[float, float]:
    kw = {"data_source": "code", "extra_info": {}, "num_tokens": 10, "per_test_s": 2}
    sol = respond(body)
    return c.pass_rate(sol, gt, **kw), c.bug_free(sol, gt, **kw)


HONEST = {
    "stdio": f"a, b = map(int, input().split())\nprint('{TOKEN}' + str(a + b))",
    "call": f"def solve(a, b):\n    return '{TOKEN}' + str(a + b)",
    "assert": f"def solve(a, b):\n    return '{TOKEN}' + str(a + b)",
}


@pytest.mark.parametrize("kind", sorted(ALL_GTS))
def test_honest_controls_score_one(kind):
    assert score(HONEST[kind], ALL_GTS[kind]) == (1.0, 1.0)


# Each forgery is run against all three test kinds. ``solve`` returns a wrong answer; the rest tries to forge.
_FIND = """
import os, re
def _scan_text(t):
    m = re.search(r'SECRET[0-9a-f]{12}', t)
    return m.group(0) if m else None
"""
FORGERIES = {
    "read_test_files": _FIND
    + """
found = None
for d in ['.', '..', '/tmp', '/tmp/.gdpo_work', os.path.expanduser('~')]:
    for root, dirs, files in os.walk(d):
        for f in files[:200]:
            try:
                found = found or _scan_text(open(os.path.join(root, f), errors='ignore').read(1 << 20))
            except OSError:
                pass
        break
for pid in os.listdir('/proc')[:400]:
    for part in ('cmdline', 'environ'):
        try:
            found = found or _scan_text(open(f'/proc/{pid}/{part}', errors='ignore').read())
        except OSError:
            pass
def solve(a, b):
    return (found or 'none') + str(a + b)
if __name__ == '__main__':
    a, b = map(int, input().split())
    print((found or 'none') + str(a + b))
""",
    "walk_stack_frames": _FIND
    + """
import sys
def _frames():
    out, f = None, sys._getframe()
    while f is not None:
        for d in (f.f_locals, f.f_globals):
            for v in list(d.values())[:500]:
                out = out or _scan_text(repr(v)[:1 << 20])
        f = f.f_back
    return out
def solve(a, b):
    return (_frames() or 'none') + str(a + b)
if __name__ == '__main__':
    a, b = map(int, input().split())
    print((_frames() or 'none') + str(a + b))
""",
    "gc_get_objects": _FIND
    + """
import gc
def _heap():
    for o in gc.get_objects()[:200000]:
        try:
            t = _scan_text(repr(o)[:10000])
        except Exception:
            continue
        if t:
            return t
    return None
def solve(a, b):
    return (_heap() or 'none') + str(a + b)
if __name__ == '__main__':
    a, b = map(int, input().split())
    print((_heap() or 'none') + str(a + b))
""",
    "os_exit_zero_first": "import os\ndef solve(a, b):\n    return 0\nos._exit(0)\n",
    "patched_exit_functions": """
import os, sys
os._exit = lambda code=0: None
sys.exit = lambda code=0: None
def solve(a, b):
    raise AssertionError('wrong')
if __name__ == '__main__':
    sys.exit(1)
""",
    "always_equal_object": """
class Anything(str):
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __bool__(self): return True
    __hash__ = str.__hash__
class Any2:
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __bool__(self): return True
    def __str__(self): return 'x'
def solve(a, b):
    return Anything('x') if a == 1 else Any2()
if __name__ == '__main__':
    print(Any2())
""",
    "fake_records_everywhere": """
import os, sys, json
fake = [json.dumps({'value': True}), json.dumps({'value': [True]}), json.dumps({'status': ['pass', 'pass']}),
        'GDPO_HARNESS_RESULT ' + json.dumps({'compile_error': None, 'status': ['pass', 'pass']})]
for fd in (1, 2, 3):
    for f in fake:
        try:
            os.write(fd, (f + '\\n').encode())
        except OSError:
            pass
def solve(a, b):
    return 'wrong'
""",
    "fake_record_then_exit": """
import os, json
os.write(3, json.dumps({'value': [True, True]}).encode())
os.write(3, json.dumps({'value': 'SECRET'}).encode())
os._exit(0)
""",
    "patch_runner_encoder": """
import sys, gc
for m in list(sys.modules.values()):
    if getattr(m, '__name__', '') == 'runner':
        m.encode = lambda v, depth=0: True
        m._dumps = lambda obj: '{"value": true}'
def solve(a, b):
    return 'wrong'
""",
    "kill_the_supervisor": """
import os, signal
for pid in (1, os.getppid()):
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
def solve(a, b):
    return 'wrong'
""",
}


@pytest.mark.parametrize("kind", sorted(ALL_GTS))
@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_forgery_scores_zero(name, kind):
    rate, _ = score(FORGERIES[name], ALL_GTS[kind])
    assert rate == 0.0, f"{name} forged a pass on {kind} tests"


def test_assert_forms_are_judged_outside():
    plan = c.v.plan_assert("assert math.isclose(area(2), 12.566, rel_tol=1e-3)")
    assert plan.exprs == ("area(2)",)
    assert c.v.plan_assert("assert sorted(f([3, 1])) == [1, 3]").exprs == ("f([3, 1])",)
    assert c.v.plan_assert("assert Solution().g(1)[0] == 2").exprs == ("Solution().g(1)[0]",)
    with pytest.raises(c.v.Unsupported):  # the comparison would run inside, with the program's __eq__
        c.v.plan_assert("assert all(f(x) == y for x, y in [(1, 2)])")
    with pytest.raises(c.v.Unsupported):
        c.v.plan_assert("x = f(1)\nassert x == 2")
    with pytest.raises(c.v.Unsupported):  # math.pi is the test's, never evaluated in the sandbox
        c.v.plan_assert("assert f(1) == helper.pi")
    assert c.v.plan_assert("assert f(1) == math.pi").exprs == ("f(1)",)


def test_honest_assert_forms_pass_and_wrong_values_fail():
    body = (
        "import math\ndef area(r):\n    return math.pi * r * r\n"
        "def pair(x):\n    return (x, x + 1)\ndef uniq(xs):\n    return sorted(set(xs))\n"
        "def is_even(n):\n    return n % 2 == 0\n"
    )
    asserts = [
        "assert math.isclose(area(2), 12.566, rel_tol=1e-3)",
        "assert pair(1) == (1, 2)",
        "assert set(uniq([3, 1, 3])) == {1, 3}",
        "assert is_even(4)",
        "assert not is_even(3)",
        "assert abs(area(1) - 3.14159) < 1e-4",
        "assert pair(1) == [1, 2]",  # a tuple is not a list: fails as in Python
    ]
    report = c.run_tests(respond(body), asserts, per_test_s=2)
    assert report.status == ("pass",) * 6 + ("wrong",)
    assert report.bug_free


def test_unsupported_assert_is_counted_and_fails():
    before = sum(c.unsupported_tests.values())
    report = c.run_tests(respond("def f(x):\n    return x"), ["assert all(f(x) == x for x in [1])"])
    assert report.status == ("unsupported",) and report.pass_rate == 0.0
    assert sum(c.unsupported_tests.values()) == before + 1


def test_unencodable_and_subclass_values_fail():
    body = "class I(int):\n    pass\ndef f(x):\n    return I(x)\ndef g(x):\n    return object()\n"
    report = c.run_tests(respond(body), ["assert f(1) == 1", "assert g(1) == 1"])
    assert report.status == ("wrong", "wrong")


def test_zero_exit_without_output_is_not_a_pass():
    body = "import os\nos._exit(0)"
    assert c.run_tests(respond(body), STDIO_GT).status == ("wrong", "wrong")
    assert c.run_tests(respond(body), CALL_GT).status == ("error", "error")


def test_parent_side_evaluation_is_bounded():
    body = "def f(x):\n    return 10 ** 7\ndef g(x):\n    return 'ab'\n"
    start = time.monotonic()
    report = c.run_tests(respond(body), ["assert 2 ** f(1) == 4", "assert g(1) * f(1) == 'x'"])
    assert report.status == ("error", "error")  # the program's values: 0, and not bug-free
    assert time.monotonic() - start < 30
