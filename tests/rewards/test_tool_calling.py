"""Tool-calling suite: the paper's correctness formula, optimal matching, format, malformed JSON."""

from __future__ import annotations

import itertools
import json
import random

import pytest

from gdpo_verl.rewards import tool_calling as tc
from gdpo_verl.rewards.ground_truth import BadGroundTruth
from gdpo_verl.rewards.matching import max_weight_matching


def call(name, **params):
    return json.dumps({"name": name, "parameters": params})


def answer(*calls, think="I should look this up.", response=None):
    out = f"<think>{think}</think>\n"
    if calls:
        out += "<tool_call>\n" + "\n".join(calls) + "\n</tool_call>"
    if response is not None:
        out += ("\n" if calls else "") + f"<response>{response}</response>"
    return out


GOLD = (
    "<tool_call>\n"
    + call("get_weather", city="Paris", unit="celsius")
    + "\n"
    + call("get_time", tz="CET")
    + "\n</tool_call>"
)


def test_perfect_answer_scores_3_in_any_order():
    resp = answer(call("get_time", tz="CET"), call("get_weather", unit="celsius", city="Paris"))
    assert tc.correctness(resp, GOLD) == pytest.approx(3.0)
    assert tc.format(resp, GOLD) == 1.0


def test_partial_answer_follows_the_formula():
    # names: {get_weather} vs {get_weather, get_time} -> 1/2; keys {city} vs {city, unit} -> 1/2; one value match
    resp = answer(call("get_weather", city="Paris"))
    s_max = 1 + 2 + 3
    assert tc.correctness(resp, GOLD) == pytest.approx(6 * (0.5 + 0.5 + 1) / s_max - 3)


def test_wrong_value_and_extra_call():
    resp = answer(call("get_weather", city="London", unit="celsius"), call("get_time", tz="CET"), call("search", q="x"))
    r = 2 / 3 + (1 + 1) + (1 + 1)
    assert tc.correctness(resp, GOLD) == pytest.approx(6 * r / 6 - 3)


def test_matching_is_optimal_not_greedy():
    gold = "<tool_call>\n" + call("f", a=1, b=2) + "\n" + call("f", a=1) + "\n</tool_call>"
    # a greedy first-fit would pair the first prediction (a=1 only) with the first gold call
    resp = answer(call("f", a=1), call("f", a=1, b=2))
    assert tc.correctness(resp, gold) == pytest.approx(3.0)


def test_malformed_response_json_scores_minus_3_and_bad_gold_raises():
    resp = '<think>x</think>\n<tool_call>\n{"name": "get_time", "parameters": {"tz": \n</tool_call>'
    assert tc.correctness(resp, GOLD) == -3.0
    assert tc.format(resp, GOLD) == 1.0  # layout is right, content is not
    for bad in ("[{not json", "<tool_call>\n{oops}\n</tool_call>"):
        with pytest.raises(BadGroundTruth, match="malformed"):
            tc.correctness(answer(call("a")), bad)


def test_no_tool_call_when_none_expected():
    gold = "<response>Hello! How can I help?</response>"
    resp = answer(response="Hi there.")
    assert tc.correctness(resp, gold) == 3.0
    assert tc.format(resp, gold) == 1.0
    assert tc.format(answer(call("a"), response="Hi"), gold) == 0.0


@pytest.mark.parametrize(
    ("resp", "want"),
    [
        (answer(call("get_time", tz="CET")), 1.0),
        ("<tool_call>\n" + call("get_time") + "\n</tool_call>", 0.0),  # no think
        (answer(call("get_time")) + "\n<response>done</response>", 0.0),  # response not expected
        ("<think>a</think><think>b</think>\n<tool_call>\n{}\n</tool_call>", 0.0),  # repeated tag
        ("<tool_call>\n" + call("x") + "\n</tool_call>\n<think>late</think>", 0.0),  # wrong order
    ],
)
def test_format(resp, want):
    assert tc.format(resp, GOLD) == want


def test_ground_truth_as_structures():
    gold = {"tool_calls": [{"name": "get_time", "arguments": {"tz": "CET"}}], "response": None}
    assert tc.correctness(answer(call("get_time", tz="CET")), gold) == 3.0
    assert (
        tc.correctness(
            answer(call("get_time", tz="CET")), json.dumps([{"name": "get_time", "parameters": {"tz": "CET"}}])
        )
        == 3.0
    )


def test_hungarian_matches_brute_force():
    rng = random.Random(0)
    for _ in range(300):
        n, m = rng.randint(1, 5), rng.randint(1, 5)
        w = [[rng.choice([0, 0, rng.random() * 3]) for _ in range(m)] for _ in range(n)]
        best = 0.0
        if n <= m:
            for cols in itertools.permutations(range(m), n):
                best = max(best, sum(w[i][c] for i, c in enumerate(cols)))
        else:
            for rows in itertools.permutations(range(n), m):
                best = max(best, sum(w[r][j] for j, r in enumerate(rows)))
        total, pairs = max_weight_matching(w)
        assert total == pytest.approx(best)
        assert len({r for r, _ in pairs}) == len(pairs) == len({c for _, c in pairs})


@pytest.mark.parametrize(
    ("gold", "resp"),
    [
        (json.dumps({"tool_calls": [], "response": "Hello!"}), answer(response="Hi there.")),
        (json.dumps({"tool_calls": [{"name": "f", "parameters": {"a": 1}}]}), answer(call("f", a=1))),
        (json.dumps([{"name": "f", "parameters": {"a": 1}}]), answer(call("f", a=1))),
    ],
)
def test_json_string_ground_truth_format_and_correctness_agree(gold, resp):
    """Both rewards read the same expectation (tool call or not) from a JSON-string ground truth."""
    assert tc.correctness(resp, gold) == 3.0
    assert tc.format(resp, gold) == 1.0
    assert tc.format(resp, json.loads(gold)) == 1.0


def test_unparseable_string_ground_truth_raises_for_both():
    for fn in (tc.format, tc.correctness):
        with pytest.raises(BadGroundTruth, match="tool: malformed ground truth"):
            fn(answer(call("a")), "just words")
