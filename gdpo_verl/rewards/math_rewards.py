"""Math suite (paper: DeepScaleR): ``correct`` ∈ {0,1} and ``length`` ∈ {0,1} (response ≤ l tokens, default 4000).

The paper's conditioned length reward is ``length`` with ``condition: {on: correct, threshold: 1.0}`` in the manager.
``correct`` grades the text after the last ``</think>`` (the whole text when there is none) with math-verify against
``\\boxed{ground_truth}``. ``length`` counts tokens with the run's tokenizer: the manager passes ``num_tokens`` (the
response's valid token count); outside the manager pass ``num_tokens`` or a ``tokenizer``.
A ground truth that is missing, empty or that math-verify cannot parse raises :class:`.BadGroundTruth` (NaN, counted
and warned by the manager); a response without a parseable answer scores 0.
"""

from __future__ import annotations

import threading
from typing import Any

from math_verify import parse, verify

from .ground_truth import BadGroundTruth, require_text
from .length import length as length  # noqa: PLC0414 - re-exported as math.length


def _answer_part(solution_str: str) -> str:
    return solution_str.rsplit("</think>", 1)[-1]


def _gold_text(ground_truth: Any) -> str:
    gt = require_text(ground_truth, "math")
    if "\\boxed" in gt or gt.startswith("$"):
        return gt
    return "\\boxed{" + gt + "}"


def correct(solution_str: str, ground_truth: Any, **_: Any) -> float:
    """1.0 when the final answer is mathematically equal to the ground truth (math-verify), else 0.0."""
    # math-verify's timeouts use SIGALRM, which only the main thread may set; the manager's workers run calls there.
    t = 5 if threading.current_thread() is threading.main_thread() else None
    gold_text = _gold_text(ground_truth)
    gold = parse(gold_text, parsing_timeout=t)
    if not gold:
        raise BadGroundTruth(f"math: math-verify cannot parse the ground truth {gold_text!r:.200}")
    pred = parse(_answer_part(solution_str), parsing_timeout=t)
    if not pred:
        return 0.0
    return float(verify(gold, pred, timeout_seconds=t))
