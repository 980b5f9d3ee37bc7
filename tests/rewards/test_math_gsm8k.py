"""Math and GSM8K suites on realistic responses."""

from __future__ import annotations

import pytest

from gdpo_verl.rewards import gsm8k, math_rewards
from gdpo_verl.rewards.length import length

R1 = (
    "<think>\nLet me compute. The sum of the roots of x^2 - 5x + 6 is 5... wait, the question asks for the "
    "product, which is 6/1 = 6.\n</think>\n\nThe product of the roots is $\\boxed{6}$."
)


@pytest.mark.parametrize(
    ("response", "gt", "want"),
    [
        (R1, "6", 1.0),
        (R1, "5", 0.0),
        ("So the probability is \\boxed{\\frac{1}{2}}.", "0.5", 1.0),
        ("The answer is \\boxed{\\dfrac{3}{4}}", "\\frac{3}{4}", 1.0),
        ("<think>maybe \\boxed{7}</think> I am not sure.", "7", 0.0),  # only the part after </think> is graded
        ("The interval is $\\boxed{[1, 3)}$", "[1,3)", 1.0),
        ("no final answer at all", "12", 0.0),
    ],
)
def test_math_correct(response, gt, want):
    assert math_rewards.correct(response, gt) == want


def test_length_uses_token_count():
    assert length("x", num_tokens=4000) == 1.0
    assert length("x", num_tokens=4001) == 0.0
    assert length("x", num_tokens=10, max_tokens=5) == 0.0

    class Tok:
        def encode(self, text, add_special_tokens=False):
            return text.split()

    assert length("a b c", tokenizer=Tok(), max_tokens=3) == 1.0
    with pytest.raises(ValueError):
        length("no count")


GOOD = "<think>\nJanet has 16 eggs, eats 3, bakes 4, sells 9 at $2.\n</think>\n<answer>18</answer>"


@pytest.mark.parametrize(
    ("response", "gt", "correct", "integer", "fmt"),
    [
        (GOOD, "Janet sells 16 - 3 - 4 = 9 eggs... #### 18", 1.0, 1.0, 1.0),
        (GOOD, "19", 0.0, 1.0, 1.0),
        ("<think>x</think>\n<answer>$18.00</answer>", "18", 1.0, 0.0, 1.0),
        ("<think>x</think>\n<answer>1,200</answer>", "#### 1200", 1.0, 1.0, 1.0),
        ("The answer is 18", "18", 1.0, 0.0, 0.0),
        ("<think>x</think><answer>18</answer>", "18", 1.0, 1.0, 0.0),  # missing newline
        ("<think>x</think>\n<answer>18</answer>\nextra", "18", 1.0, 1.0, 0.0),
    ],
)
def test_gsm8k(response, gt, correct, integer, fmt):
    assert gsm8k.correct(response, gt) == correct
    assert gsm8k.integer(response) == integer
    assert gsm8k.format(response) == fmt
