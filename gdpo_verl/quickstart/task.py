"""The quickstart task: find the digit in a short line of letters, with two rewards of different difficulty.

Prompt ``"find the digit: k 7 q"``, answer ``"7"``. Like the paper's tool-calling and math runs, one reward is easy
(a format reward) and one is hard (correctness):

* ``format`` in [0, 1]: share of the first :data:`FORMAT_CHARS` characters of the answer that are digits. A random
  tiny model already scores ~0.1-0.2 and learns this within a few dozen steps.
* ``correct`` in {0, 1}: the first digit of the answer is the digit in the prompt. Needs the model to read the
  prompt; starts near 0.

verl loads :func:`compute_score` with ``reward.custom_reward_function.path=pkg://gdpo_verl.quickstart.task``. It returns
``{"score": weighted sum, "format": ..., "correct": ...}``: verl logs every key, GDPO normalizes each one separately.
This module imports nothing heavy: verl's reward workers import it.
"""

from __future__ import annotations

import random
import string
from typing import Any

DATA_SOURCE = "gdpo_quickstart/find_digit"
REWARD_KEYS = ("format", "correct")
FORMAT_CHARS = 3
LETTERS = string.ascii_lowercase


def make_prompt(rng: random.Random) -> tuple[str, str]:
    """One ``(prompt text, answer digit)`` pair: 2-4 letters with one digit among them."""
    n = rng.randint(2, 4)
    items = [rng.choice(LETTERS) for _ in range(n)]
    digit = str(rng.randint(0, 9))
    items.insert(rng.randint(0, n), digit)
    return "find the digit: " + " ".join(items), digit


def make_rows(n: int, seed: int, split: str) -> list[dict[str, Any]]:
    """``n`` rows in verl's RL dataset schema."""
    return make_rows_for(DATA_SOURCE, n, seed, split)


def make_rows_for(data_source: str, n: int, seed: int, split: str) -> list[dict[str, Any]]:
    """``n`` rows of this task's prompts under ``data_source`` (other tasks reuse the prompts)."""
    rng = random.Random(f"{seed}-{split}")
    rows = []
    for i in range(n):
        text, digit = make_prompt(rng)
        rows.append(
            {
                "data_source": data_source,
                "prompt": [{"role": "user", "content": text}],
                "ability": "pattern",
                "reward_model": {"style": "rule", "ground_truth": digit},
                "extra_info": {"split": split, "index": i},
            }
        )
    return rows


def format_reward(text: str) -> float:
    head = text.strip()[:FORMAT_CHARS]
    return sum(c.isdigit() for c in head) / FORMAT_CHARS if head else 0.0


def correct_reward(text: str, answer: str) -> float:
    first = next((c for c in text if c.isdigit()), None)
    return 1.0 if first is not None and first == answer.strip() else 0.0


def rewards(text: str, answer: str) -> dict[str, float]:
    return {"format": format_reward(text), "correct": correct_reward(text, answer)}


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: str,
    extra_info: dict | None = None,
    format_weight: float = 1.0,
    correct_weight: float = 1.0,
    **kwargs: Any,
) -> dict[str, float]:
    """verl's custom reward signature. ``score`` is what GRPO sees; GDPO reads ``format`` and ``correct``."""
    fmt = format_reward(solution_str)
    cor = correct_reward(solution_str, str(ground_truth))
    return {"score": format_weight * fmt + correct_weight * cor, "format": fmt, "correct": cor}


def format_score(data_source: str, solution_str: str, ground_truth: str, extra_info: dict | None = None, **_: Any):
    """The ``format`` reward alone, for ``gdpo_multi`` (``fn: gdpo_verl.quickstart.task:format_score``)."""
    return format_reward(solution_str)


def correct_score(data_source: str, solution_str: str, ground_truth: str, extra_info: dict | None = None, **_: Any):
    """The ``correct`` reward alone, for ``gdpo_multi`` (``fn: gdpo_verl.quickstart.task:correct_score``)."""
    return correct_reward(solution_str, str(ground_truth))
