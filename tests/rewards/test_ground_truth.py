"""A bad ground truth is a counted, warned NaN with cause ``BadGroundTruth`` in every suite; parquet's numpy arrays
are read as the lists they stand for."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest

from gdpo_verl.rewards.ground_truth import BadGroundTruth, plain
from gdpo_verl.rewards.manager import FAILURES_KEY, MultiRewardScorer, parse_config

pytestmark = pytest.mark.timeout(180)

CODE = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
TOOL = '<think>x</think>\n<tool_call>\n{"name": "f", "parameters": {"a": 1}}\n</tool_call>'
# suite -> (the reward that reads the ground truth, a response, a malformed ground truth)
SUITES = {
    "math": ("correct", "The answer is $\\boxed{6}$.", "\\boxed{"),
    "gsm8k": ("correct", "<think>x</think>\n<answer>18</answer>", "no number here"),
    "code": ("pass_rate", CODE, "{not json"),
    "tool": ("correctness", TOOL, "[{not json"),
}
BAD = {"None": None, "empty": "", "empty list": np.array([], dtype=object)}


@pytest.fixture(scope="module")
def scorers():
    made = {s: MultiRewardScorer(parse_config({"suite": s, "max_workers": 1})) for s in SUITES}
    yield made
    for sc in made.values():
        sc.close()


def _payload(response, gt) -> dict:
    return {"data_source": "t", "solution_str": response, "ground_truth": gt, "extra_info": {}, "num_tokens": 10}


@pytest.mark.parametrize("suite", list(SUITES))
def test_bad_ground_truth_is_counted_and_warned_once_in_every_suite(scorers, suite, caplog):
    key, response, malformed = SUITES[suite]
    scorer = scorers[suite]
    before = scorer.failures[(key, "BadGroundTruth")]
    with caplog.at_level(logging.WARNING, logger="gdpo_verl.rewards"):
        for gt in [*BAD.values(), malformed]:
            out = scorer.submit(_payload(response, gt)).result(timeout=120)
            row = scorer.finish(out)
            assert math.isnan(row[key]) and row[FAILURES_KEY] >= 1.0, (suite, gt)
            mine = out[scorer.cfg.names.index(key)]
            assert mine.cause == "BadGroundTruth" and "ground truth" in mine.message, mine
    assert scorer.failures[(key, "BadGroundTruth")] - before == 4
    warned = [r for r in caplog.records if "BadGroundTruth" in r.getMessage() and repr(key) in r.getMessage()]
    assert len(warned) == 1  # once per reward and cause


@pytest.mark.parametrize("gt", [None, "", "no number", np.array([], dtype=object)])
def test_gsm8k_strict_correct_raises_for_a_bad_ground_truth_even_without_an_answer_tag(gt):
    from gdpo_verl.rewards import gsm8k

    with pytest.raises(BadGroundTruth):
        gsm8k.correct_strict("no tag here", gt)


def test_numpy_ground_truths_from_parquet_score_like_lists(scorers):
    gt_code = {"inputs": np.array(["2 3\n", "1 1\n"], dtype=object), "outputs": np.array(["5\n", "2\n"], dtype=object)}
    cases = {
        "math": (np.array(["6"], dtype=object), "correct", 1.0),
        "gsm8k": (np.int64(18), "correct", 1.0),
        "code": (gt_code, "pass_rate", 1.0),
        "tool": (np.array([{"name": "f", "parameters": {"a": np.int64(1)}}], dtype=object), "correctness", 3.0),
    }
    for suite, (gt, key, want) in cases.items():
        row = scorers[suite].finish(scorers[suite].submit(_payload(SUITES[suite][1], gt)).result(timeout=120))
        assert row[key] == want, (suite, row)
        assert row[FAILURES_KEY] == 0.0


def test_plain_converts_nested_numpy_values():
    gt = {"a": np.array([np.array([1, 2]), np.array([3])], dtype=object), "b": np.float32(0.5), "c": ("x", np.int8(2))}
    assert plain(gt) == {"a": [[1, 2], [3]], "b": 0.5, "c": ("x", 2)}
    assert type(plain(np.int64(3))) is int and json.dumps(plain(gt))


def test_bad_ground_truth_is_a_value_error():
    assert issubclass(BadGroundTruth, ValueError)  # callers that caught ValueError still catch it
