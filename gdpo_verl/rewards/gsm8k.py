"""GSM8K suite (the GDPO repository's TRL recipe): ``correct``, ``integer``, ``format``, all in {0,1}.

The answer is the text of the last ``<answer>…</answer>`` (the whole response when there is none).
- correct: the answer equals the ground truth as a number (commas, ``$`` and surrounding text ignored; the
  ground truth may be a bare number or GSM8K's full solution ending in ``#### 72``); ``correct_strict`` is 0 when
  there is no ``<answer>`` tag (the TRL recipe's scoring);
- integer: the answer is an integer literal (``-?\\d+``, commas allowed as thousands separators);
- format: the whole response matches ``^<think>.*?</think>\\n<answer>.*?</answer>$`` (dot matches newlines).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from .ground_truth import BadGroundTruth, require_text

FORMAT = re.compile(r"^<think>.*?</think>\n<answer>.*?</answer>$", re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def extract_answer(solution_str: str) -> str:
    found = _ANSWER.findall(solution_str)
    return (found[-1] if found else solution_str).strip()


def gold_answer(ground_truth: Any) -> str:
    text = require_text(ground_truth, "gsm8k")
    return text.split("####")[-1].strip() if "####" in text else text


def _to_number(text: str) -> Decimal | None:
    nums = _NUMBER.findall(text.replace("$", ""))
    if not nums:
        return None
    try:
        return Decimal(nums[-1].replace(",", ""))
    except InvalidOperation:
        return None


def _gold_number(ground_truth: Any) -> Decimal:
    gold = gold_answer(ground_truth)
    want = _to_number(gold)
    if want is None:
        raise BadGroundTruth(f"gsm8k: no number in the ground truth {gold!r:.200}")
    return want


def correct(solution_str: str, ground_truth: Any, **_: Any) -> float:
    want = _gold_number(ground_truth)
    got = _to_number(extract_answer(solution_str))
    return 0.0 if got is None else float(want == got)


def correct_strict(solution_str: str, ground_truth: Any, **_: Any) -> float:
    """`correct` as the TRL recipe scores it: only an answer inside ``<answer>…</answer>`` counts."""
    _gold_number(ground_truth)  # a bad ground truth raises, tag or not
    return correct(solution_str, ground_truth) if _ANSWER.search(solution_str) else 0.0


def integer(solution_str: str, **_: Any) -> float:
    return float(bool(re.fullmatch(r"-?\d{1,3}(?:,\d{3})+|-?\d+", extract_answer(solution_str))))


def format(solution_str: str, **_: Any) -> float:  # noqa: A001 - the reward's name
    return float(bool(FORMAT.match(solution_str)))
