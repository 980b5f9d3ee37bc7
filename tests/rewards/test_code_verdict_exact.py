"""Exact verdicts: integers, strings and booleans compare exactly; a numeric tolerance applies only where the expected
value is a float (|got - want| <= 1e-6 * max(1, |want|)). Wrong answers a policy would try: an off-by-one integer
large enough that a relative tolerance hides it, stdout a few 1e-7 away from an integer, ``1e6`` for ``1000000``,
``nan``/``inf`` tokens, integers too large for a float."""

from __future__ import annotations

import pytest

from gdpo_verl.rewards import code_rewards as c
from gdpo_verl.rewards import code_verdict as v

pytestmark = pytest.mark.timeout(120)
BIG = 10**6 + 7


@pytest.mark.parametrize(
    ("got", "want", "ok"),
    [
        ("1000008\n", "1000007\n", False),  # off by one at 1e6: a rel_tol of 1e-6 passed it
        (f"{10**18 + 1}\n", f"{10**18}\n", False),
        ("1000007.0000004\n", "1000007\n", False),  # 4e-7 away from an expected integer
        ("1e6\n", "1000000\n", False),
        ("7 \n", "7\n", True),  # trailing whitespace per line (the datasets' normalisation)
        ("1  2\n3", "1 2 3\n", True),  # token-wise whitespace
        ("0.3333334\n", "0.333333\n", True),  # expected float: 1e-6 tolerance (the judges' convention)
        ("0.333335\n", "0.333333\n", False),
        ("1\n", "1.0\n", True),
        ("nan\n", "0.5\n", False),
        ("inf\n", "1e308\n", False),
        ("9" * 5000 + "\n", "1.5\n", False),  # too large for a float: wrong, not an exception
        ("YES\n", "yes\n", False),
    ],
)
def test_stdio_tokens(got, want, ok):
    assert v.stdio_equal(got, want) is ok


@pytest.mark.parametrize(
    ("got", "want", "ok"),
    [
        (BIG + 1, BIG, False),
        (10**30 + 1, 10**30, False),
        (3.0, 3, True),  # exactly equal numbers
        (3.0000001, 3, False),
        (0.1 + 0.2, 0.3, True),  # expected float: tolerance
        (0.3 + 2e-6, 0.3, False),
        (10**400, 1.5, False),  # too large to convert: wrong, never an exception
        (True, 1, False),
        (1, True, False),
        ("5", 5, False),
        ([1, 2, BIG + 1], [1, 2, BIG], False),
        ({"a": 0.5}, {"a": 0.5000001}, True),
        ((1, 2), [1, 2], True),  # tuples come back as the JSON ground truth's lists
        (BIG, [BIG], True),  # the one-element list convention of call-based tests
    ],
)
def test_call_values(got, want, ok):
    assert v.call_equal(got, want) is ok


def _respond(body: str) -> str:
    return f"```python\n{body}\n```"


def test_near_misses_score_zero_end_to_end():
    stdio_gt = {"inputs": ["1000006\n"], "outputs": ["1000007\n"]}
    call_gt = {"fn_name": "f", "inputs": [[1000006]], "outputs": [1000007]}
    honest = ("print(int(input()) + 1)", "def f(x):\n    return x + 1")
    off_by_one = ("print(int(input()) + 2)", "def f(x):\n    return x + 2")
    off_by_4e7 = ("print(int(input()) + 1.0000004)", "def f(x):\n    return x + 1.0000004")
    for i, gt in enumerate((stdio_gt, call_gt)):
        assert c.pass_rate(_respond(honest[i]), gt) == 1.0
        assert c.pass_rate(_respond(off_by_one[i]), gt) == 0.0
        assert c.pass_rate(_respond(off_by_4e7[i]), gt) == 0.0
        assert c.pass_rate(_respond(honest[i]), gt) == 1.0
