"""Code suite on realistic responses (stdio, call-based, asserts; wrong answers, crashes, syntax errors, loops)."""

from __future__ import annotations

import json

import pytest

from gdpo_verl.rewards import code_rewards as c

pytestmark = pytest.mark.timeout(120)

STDIO_GT = json.dumps({"inputs": ["1 2\n", "3 4\n", "10 -3\n"], "outputs": ["3\n", "7\n", "7\n"]})


def respond(body: str) -> str:
    return f"<think>Read two integers and add them.</think>\nHere is my solution:\n```python\n{body}\n```\nDone."


def test_extract_code_prefers_last_python_block():
    text = "```\nnot this\n```\nthen\n```python\nprint(1)\n```\n```text\nlog\n```"
    assert c.extract_code(text) == "print(1)\n"
    assert c.extract_code("no code") is None


def test_correct_stdio_solution():
    sol = respond("a, b = map(int, input().split())\nprint(a + b)")
    assert c.pass_rate(sol, STDIO_GT) == 1.0
    assert c.bug_free(sol, STDIO_GT) == 1.0


def test_partially_wrong_solution_is_not_a_bug():
    sol = respond("a, b = map(int, input().split())\nprint(a + b if a < 5 else a - b)")
    assert c.pass_rate(sol, STDIO_GT) == pytest.approx(2 / 3)
    assert c.bug_free(sol, STDIO_GT) == 1.0


@pytest.mark.parametrize(
    "body", ["a, b = map(int, input().split())\nprint(a / 0)", "print(undefined_name)", "def f(:\n    pass"]
)
def test_runtime_and_compile_errors(body):
    sol = respond(body)
    assert c.pass_rate(sol, STDIO_GT) == 0.0
    assert c.bug_free(sol, STDIO_GT) == 0.0


def test_timeout_counts_as_failure_and_bug():
    sol = respond("while True:\n    pass")
    report = c.run_tests(sol, STDIO_GT, per_test_s=1, max_tests=1)
    assert report.status == ("timeout",)
    assert not report.bug_free


def test_call_based_with_solution_class_and_wrapped_outputs():
    sol = respond(
        "class Solution:\n    def twoSum(self, nums, target):\n        seen = {}\n"
        "        for i, x in enumerate(nums):\n            if target - x in seen:\n"
        "                return [seen[target - x], i]\n            seen[x] = i\n"
    )
    gt = {"fn_name": "twoSum", "inputs": [[[2, 7, 11, 15], 9], [[3, 2, 4], 6]], "outputs": [[0, 1], [[1, 2]]]}
    assert c.pass_rate(sol, gt) == 1.0


def test_assert_tests_and_float_tolerance():
    sol = respond("def area(r):\n    return 3.14159265 * r * r")
    assert c.pass_rate(sol, ["assert abs(area(1) - 3.14159) < 1e-4", "assert area(0) == 1"]) == 0.5
    gt = {"inputs": ["2\n"], "outputs": ["1.41421356\n"]}
    assert c.pass_rate(respond("print(2 ** 0.5)"), gt) == 1.0


def test_no_code_block_scores_zero():
    assert c.pass_rate("I think the answer is 3.", STDIO_GT) == 0.0
    assert c.bug_free("I think the answer is 3.", STDIO_GT) == 0.0


def test_malformed_ground_truth_raises_value_error():
    with pytest.raises(ValueError):
        c.parse_tests("{not json")
    with pytest.raises(ValueError):
        c.parse_tests({"inputs": ["1"], "outputs": []})


def test_extract_code_is_linear_on_an_unclosed_fence():
    import time

    texts = [
        "```" + "a" * 400_000,  # a fence tag that never ends its line
        "```python\n" + "x = 1\n" * 70_000,  # a block that never closes
        "``` ```" * 60_000,  # fences everywhere, no newline
    ]
    start = time.monotonic()
    for t in texts:
        assert c.extract_code(t) is None
    assert time.monotonic() - start < 2.0  # the quadratic regex took 10-47 s on 96k-192k characters


def test_extract_code_scans_only_the_tail():
    body = "```python\nprint(1)\n```"
    assert c.extract_code(body + "x" * (c.MAX_SCAN_CHARS + 10)) is None
    assert c.extract_code("x" * (c.MAX_SCAN_CHARS + 10) + body) == "print(1)\n"


def test_misspelt_kwarg_is_an_error():
    with pytest.raises(TypeError, match="per_test"):
        c.pass_rate(respond("print(3)"), STDIO_GT, per_test=2)
