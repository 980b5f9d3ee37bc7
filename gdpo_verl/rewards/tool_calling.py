"""Tool-calling suite (paper: ToolRL rlla_4k): ``format`` ∈ {0,1} and ``correctness`` ∈ [-3, 3].

Expected output: ``<think>…</think>`` then ``<tool_call>`` with one JSON object per line
(``{"name": ..., "parameters": {...}}``; ``"arguments"`` is accepted too) ``</tool_call>`` and/or
``<response>…</response>``, as the ground truth requires.

format: 1 when the response is exactly ``<think>…</think>\\n`` followed by the blocks the ground truth has, in the
order tool_call then response, each tag exactly once; else 0.

correctness = 6·R_max/S_max − 3 with S_max = 1 + |G| + Σ_j |keys(G_j)| and
R = Jaccard(names(P), names(G)) + Σ_matched [Jaccard(keys(P_i), keys(G_j)) + #{k ∈ keys(G_j): P_i[k] == G_j[k]}],
maximized over one-to-one matchings of predicted to gold calls with the same name (Hungarian algorithm). Names are
compared as multisets. A response whose tool-call block is not valid JSON scores −3; a ground truth that is
missing, empty or cannot be parsed raises :class:`.BadGroundTruth` (NaN, counted and warned by the manager).
"""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from typing import Any

from .ground_truth import BadGroundTruth, plain
from .matching import max_weight_matching

_TAGS = ("<think>", "</think>", "<tool_call>", "</tool_call>", "<response>", "</response>")
_BLOCK = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)


class BadCalls(ValueError):
    """A tool-call block that is not a list of {name, parameters} JSON objects."""


def _load_calls(text: str) -> list[dict]:
    text = text.strip()
    if not text:
        return []
    try:
        obj = json.loads(text)
        items = obj if isinstance(obj, list) else [obj]
    except ValueError:
        items = []
        for line in text.splitlines():
            if line.strip():
                try:
                    items.append(json.loads(line))
                except ValueError as e:
                    raise BadCalls(f"not JSON: {line[:80]!r}") from e
    calls = []
    for it in items:
        if not isinstance(it, dict) or not isinstance(it.get("name"), str):
            raise BadCalls(f"not a tool call: {str(it)[:80]!r}")
        params = it.get("parameters", it.get("arguments", {}))
        if isinstance(params, str):
            try:
                params = json.loads(params)
            except ValueError as e:
                raise BadCalls("parameters are not JSON") from e
        if not isinstance(params, dict):
            raise BadCalls("parameters are not an object")
        calls.append({"name": it["name"], "parameters": params})
    return calls


def parse_calls(text: str) -> list[dict]:
    """Tool calls inside every ``<tool_call>`` block of ``text`` (raises BadCalls on malformed JSON)."""
    return [c for block in _BLOCK.findall(text) for c in _load_calls(block)]


def parse_ground_truth(ground_truth: Any) -> tuple[list[dict], bool, bool]:
    """(gold calls, expects a tool_call block, expects a response block). ``format`` and ``correctness`` both read
    the ground truth here; a string is parsed once per worker (cached), whatever its form (tags or JSON).
    Raises BadGroundTruth when it is missing, empty or malformed."""
    gt = plain(ground_truth)
    if gt is None or (isinstance(gt, (str, list, tuple, dict)) and not (gt.strip() if isinstance(gt, str) else gt)):
        raise BadGroundTruth(f"tool: ground truth is {gt!r}")
    try:
        return _parse_text_ground_truth(gt) if isinstance(gt, str) else _parse_ground_truth(gt)
    except (ValueError, TypeError) as e:
        raise BadGroundTruth(f"tool: malformed ground truth ({e}): {str(gt)[:200]!r}") from None


@functools.lru_cache(maxsize=1024)
def _parse_text_ground_truth(text: str) -> tuple[list[dict], bool, bool]:
    return _parse_ground_truth(text)


def _parse_ground_truth(ground_truth: Any) -> tuple[list[dict], bool, bool]:
    gt = ground_truth
    if isinstance(gt, str) and ("<tool_call>" in gt or "<response>" in gt):
        return parse_calls(gt), "<tool_call>" in gt, "<response>" in gt
    if isinstance(gt, str):
        gt = json.loads(gt)
    if isinstance(gt, dict) and ("tool_calls" in gt or "response" in gt):
        calls = gt.get("tool_calls") or []
        calls = _load_calls(json.dumps(calls))
        return calls, bool(calls), gt.get("response") is not None
    if isinstance(gt, dict):
        gt = [gt]
    calls = _load_calls(json.dumps(gt))
    return calls, True, False


def _pattern(tool: bool, response: bool) -> re.Pattern:
    body = ""
    if tool:
        body += r"\n<tool_call>.*?</tool_call>"
    if response:
        body += r"\n<response>.*?</response>"
    return re.compile(r"^<think>.*?</think>" + body + r"\s*$", re.DOTALL)


def format(solution_str: str, ground_truth: Any, **_: Any) -> float:  # noqa: A001 - the reward's name
    """1.0 when the response has the think/tool_call/response layout the ground truth needs, else 0.0
    (the ground truth is read by :func:`parse_ground_truth`, as ``correctness`` reads it)."""
    _, tool, response = parse_ground_truth(ground_truth)
    text = solution_str.strip()
    expected = (
        {"<think>", "</think>"}
        | ({"<tool_call>", "</tool_call>"} if tool else set())
        | ({"<response>", "</response>"} if response else set())
    )
    if any(text.count(tag) != (1 if tag in expected else 0) for tag in _TAGS):
        return 0.0
    return float(bool(_pattern(tool, response).match(text)))


def _jaccard(a: Counter | set, b: Counter | set) -> float:
    if not a and not b:
        return 1.0
    if isinstance(a, Counter):
        return sum((a & b).values()) / sum((a | b).values())
    return len(a & b) / len(a | b)


def _pair_score(p: dict, g: dict) -> float:
    if p["name"] != g["name"]:
        return 0.0
    pk, gk = set(p["parameters"]), set(g["parameters"])
    values = sum(1 for k in gk if k in p["parameters"] and p["parameters"][k] == g["parameters"][k])
    return _jaccard(pk, gk) + values


def score_calls(pred: list[dict], gold: list[dict]) -> float:
    """The paper's correctness in [-3, 3] for parsed calls."""
    s_max = 1 + len(gold) + sum(len(g["parameters"]) for g in gold)
    r = _jaccard(Counter(p["name"] for p in pred), Counter(g["name"] for g in gold))
    if pred and gold:
        weights = [[_pair_score(p, g) for g in gold] for p in pred]
        r += max_weight_matching(weights)[0]
    return 6.0 * r / s_max - 3.0


def correctness(solution_str: str, ground_truth: Any, **_: Any) -> float:
    """Tool-call correctness in [-3, 3]; -3 for a malformed tool-call block."""
    gold, _, _ = parse_ground_truth(ground_truth)
    try:
        pred = parse_calls(solution_str)
    except BadCalls:
        return -3.0
    return score_calls(pred, gold)
