"""Bounded trusted evaluation: what the parent computes for an assert on a program's values (``%``-formatting,
``**``, ``<<``, repetition, ``sum``, ``round``, big integers) stays within fixed size and time bounds; a program whose
values would push it past them scores 0 (an error, so not bug-free), and honest responses beside it score 1. Memory
is measured with tracemalloc: an unbounded ``'%0200000000d' % 3`` alone allocates 200 MB."""

from __future__ import annotations

import time
import tracemalloc

import pytest
from code_group import check_group, score_group

from gdpo_verl.rewards import code_verdict as v

pytestmark = pytest.mark.timeout(120)

BOMBS = [  # (assert, the value the program returns for its slot)
    ("assert f(1) % 3 == 'x3'", "%0200000000d"),
    ("assert f(1) % 3 == 'x3'", "%.200000000f"),
    ("assert f(1) % (200000000, 3) == 'x3'", "%*d"),
    ("assert f(1) % {'a': 3} == 'x3'", "%(a)0200000000d"),
    ("assert 2 ** f(1) == 4", 10**7),
    ("assert 1 << f(1) == 2", 10**9),
    ("assert f(1) * 10 ** 7 == 'x3'", "ab"),
    ("assert [0] * f(1) == []", 10**8),
    ("assert sum(f(1), []) == [1]", [[1]] * 100_000),
    ("assert round(1.5, f(1)) == 2", -(10**9)),
    ("assert f(1) ** 300 == 1", 10**4000),
]


@pytest.mark.parametrize(("test", "value"), BOMBS)
def test_bombs_stay_within_bounds(test, value):
    plan = v.plan_assert(test)
    tracemalloc.start()
    start = time.monotonic()
    try:
        try:
            holds = v.condition_holds(plan, [value])
        except v.TooLarge:
            holds = None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert holds is not True
    assert time.monotonic() - start < 5
    assert peak < 64 << 20, peak


def test_honest_values_still_evaluate():
    assert v.condition_holds(v.plan_assert("assert f(1) % 3 == 'x3'"), ["x%d"])
    assert v.condition_holds(v.plan_assert("assert sum(f(1)) == 6"), [[1, 2, 3]])
    assert v.condition_holds(v.plan_assert("assert 2 ** f(1) == 1024"), [10])
    assert v.condition_holds(v.plan_assert("assert round(f(1), 2) == 0.33"), [1 / 3])


def test_a_format_bomb_scores_zero_beside_honest_responses():
    gt = ["assert f(1) % 3 == 'x3'", "assert f(2) % 4 == 'x4'"]
    honest = "def f(x):\n    return 'x%d'"
    bomb = "def f(x):\n    return '%0200000000d'"
    bodies = [honest, bomb, honest, bomb, honest]
    results = score_group(bodies, gt=gt)
    check_group(bodies, {0, 2, 4}, results)
    assert all(r[1] == 0.0 for r in results[1::2])  # an error, not a wrong answer
