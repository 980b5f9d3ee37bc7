"""The quickstart task: data rows in verl's RL schema and the two rewards of different difficulty."""

from __future__ import annotations

import random

import pytest

from gdpo_verl.quickstart import task


def test_rows_follow_verls_rl_schema():
    rows = task.make_rows(5, seed=1, split="train")
    assert len(rows) == 5
    for i, row in enumerate(rows):
        assert set(row) == {"data_source", "prompt", "ability", "reward_model", "extra_info"}
        assert row["prompt"][0]["role"] == "user" and row["prompt"][0]["content"].startswith("find the digit:")
        digit = row["reward_model"]["ground_truth"]
        assert digit.isdigit() and len(digit) == 1 and digit in row["prompt"][0]["content"].split()
        assert row["extra_info"] == {"split": "train", "index": i}
    assert task.make_rows(5, seed=1, split="train") == rows  # reproducible
    assert task.make_rows(5, seed=1, split="val") != rows


def test_prompt_has_exactly_one_digit():
    rng = random.Random(0)
    for _ in range(200):
        text, digit = task.make_prompt(rng)
        assert [c for c in text if c.isdigit()] == [digit]


@pytest.mark.parametrize(
    ("text", "answer", "fmt", "correct"),
    [
        ("7", "7", 1 / 3, 1.0),
        ("777", "7", 1.0, 1.0),
        (" 77 x", "7", 2 / 3, 1.0),
        ("a3", "3", 1 / 3, 1.0),
        ("a3", "4", 1 / 3, 0.0),
        ("abc9", "9", 0.0, 1.0),  # right digit, wrong format
        ("", "1", 0.0, 0.0),
        ("   ", "1", 0.0, 0.0),
    ],
)
def test_rewards(text, answer, fmt, correct):
    assert task.format_reward(text) == pytest.approx(fmt)
    assert task.correct_reward(text, answer) == correct


def test_compute_score_returns_the_weighted_sum_and_every_component():
    out = task.compute_score(task.DATA_SOURCE, "5x", "5", extra_info={})
    assert set(out) == {"score", *task.REWARD_KEYS}
    assert out["score"] == pytest.approx(out["format"] + out["correct"])
    weighted = task.compute_score(task.DATA_SOURCE, "5x", "5", format_weight=0.5, correct_weight=2.0)
    assert weighted["score"] == pytest.approx(0.5 * weighted["format"] + 2.0 * weighted["correct"])


def test_a_random_answer_is_easy_on_format_and_hard_on_correctness():
    rng = random.Random(0)
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz :"
    rows = task.make_rows(400, seed=0, split="train")
    fmt = cor = 0.0
    for row in rows:
        text = "".join(rng.choice(alphabet) for _ in range(6))
        out = task.compute_score(row["data_source"], text, row["reward_model"]["ground_truth"])
        fmt, cor = fmt + out["format"], cor + out["correct"]
    assert fmt / len(rows) > 2 * cor / len(rows)
