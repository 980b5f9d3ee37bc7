"""A quickstart task with two binary rewards, both within reach of the tiny model: GRPO's sum collapses groups.

Same prompts as :mod:`gdpo_verl.quickstart.task` (``"find the digit: k 7 q"``), two rewards in {0, 1} that the
model can earn without reading the prompt:

* ``digit``: the answer starts with a digit (a random tiny model: ~0.1-0.2);
* ``letter``: the answer ends with a letter (a random tiny model: ~0.3-0.5).

A rollout with ``digit`` only and one with ``letter`` only get the same sum, so GRPO on ``score = digit + letter``
gives them the same advantage while GDPO tells them apart: the advantage collapse of the GDPO paper (Sec. 3), which
the fractional ``format`` reward of the first task never produces. Both rewards can hold at once (``"7 k"``).
This module imports nothing heavy: verl's reward workers import it.
"""

from __future__ import annotations

from typing import Any

from gdpo_verl.quickstart.task import make_prompt, make_rows_for

DATA_SOURCE = "gdpo_quickstart/two_binary"
REWARD_KEYS = ("digit", "letter")
__all__ = ["DATA_SOURCE", "REWARD_KEYS", "compute_score", "make_prompt", "make_rows", "rewards"]


def make_rows(n: int, seed: int, split: str) -> list[dict[str, Any]]:
    return make_rows_for(DATA_SOURCE, n, seed, split)


def rewards(text: str, answer: str) -> dict[str, float]:
    """``{"digit": ..., "letter": ...}`` for one decoded answer (``answer``, the prompt's digit, is not used)."""
    s = text.strip()
    return {
        "digit": 1.0 if s[:1].isdigit() else 0.0,
        "letter": 1.0 if s[-1:].isascii() and s[-1:].isalpha() else 0.0,
    }


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: str,
    extra_info: dict | None = None,
    digit_weight: float = 1.0,
    letter_weight: float = 1.0,
    **kwargs: Any,
) -> dict[str, float]:
    """verl's custom reward signature. ``score`` is what GRPO sees; GDPO reads ``digit`` and ``letter``."""
    out = rewards(solution_str, str(ground_truth))
    return {"score": digit_weight * out["digit"] + letter_weight * out["letter"], **out}
