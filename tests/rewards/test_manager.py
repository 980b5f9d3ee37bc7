"""Manager logic: config, key validation, conditioning, score, signature, and the pool's failure handling."""

from __future__ import annotations

import logging
import math
import os
import textwrap
import time

import pytest

from gdpo_verl.rewards.manager import (
    FAILURES_KEY,
    SIGNATURE_KEY,
    MultiRewardScorer,
    RewardConfigError,
    combine,
    parse_config,
    signature,
    validate_against_keys,
)

pytestmark = pytest.mark.timeout(120)


def test_suite_and_override_merge_by_name():
    cfg = parse_config({"suite": "math", "rewards": [{"name": "length", "condition": {"on": "correct"}}]})
    assert cfg.names == ["correct", "length"]
    length = cfg.rewards[1]
    assert length.fn == "math.length" and dict(length.kwargs) == {"max_tokens": 4000}
    assert length.condition is not None and length.condition.on == "correct" and length.condition.threshold == 1.0


def test_yaml_on_key_read_as_true_is_accepted():
    cfg = parse_config(
        {
            "rewards": [
                {"name": "a", "fn": "gsm8k.correct"},
                {"name": "b", "fn": "gsm8k.format", "condition": {True: "a", "threshold": 1}},
            ]
        }
    )
    assert cfg.rewards[1].condition.on == "a"


@pytest.mark.parametrize(
    ("section", "match"),
    [
        ({}, "no rewards"),
        ({"suite": "chess"}, "suite"),
        ({"rewards": [{"name": "a"}]}, "'fn' is required"),
        ({"rewards": [{"name": "a", "fn": "nope"}]}, "unknown reward function"),
        ({"rewards": [{"name": "a", "fn": "/no/such/file.py:f"}]}, "does not exist"),
        ({"rewards": [{"name": "score", "fn": "math.correct"}]}, "reserved"),
        ({"rewards": [{"name": "a", "fn": "math.correct", "condition": {"on": "zzz"}}]}, "condition"),
        ({"rewards": [{"name": "a", "fn": "math.correct", "wieght": 2}]}, "unknown fields"),
        ({"sute": "math"}, "unknown keys"),
    ],
)
def test_config_errors(section, match):
    with pytest.raises(RewardConfigError, match=match):
        parse_config(section)


def test_validate_against_keys_names_both_lists():
    cfg = parse_config({"suite": "gsm8k"})
    validate_against_keys(cfg, None)
    validate_against_keys(cfg, ["format", "correct", "integer"])
    with pytest.raises(RewardConfigError) as e:
        validate_against_keys(cfg, ["correct", "length"])
    assert "['correct', 'length']" in str(e.value) and "['correct', 'integer', 'format']" in str(e.value)


def test_combine_conditions_weights_and_nan():
    cfg = parse_config(
        {
            "rewards": [
                {"name": "correct", "fn": "math.correct"},
                {
                    "name": "length",
                    "fn": "math.length",
                    "weight": 0.5,
                    "condition": {"on": "correct", "threshold": 1.0},
                },
            ]
        }
    )
    assert combine(cfg, {"correct": 1.0, "length": 1.0})["score"] == 1.5
    out = combine(cfg, {"correct": 0.0, "length": 1.0})
    assert out["length"] == 0.0 and out["score"] == 0.0
    out = combine(cfg, {"correct": math.nan, "length": 1.0})
    assert math.isnan(out["correct"]) and math.isnan(out["length"]) and out["score"] == 0.0
    out = combine(cfg, {"correct": 1.0, "length": math.nan})
    assert out["score"] == 1.0


def test_signature_separates_vectors_with_equal_totals():
    vectors = [(1.0, 0.0), (0.0, 1.0), (0.5, 0.5), (1.0, 1.0), (math.nan, 1.0), (1.0, math.nan)]
    sigs = [signature(v) for v in vectors]
    assert len(set(sigs)) == len(sigs)
    assert all(0.0 <= s < 1.0 for s in sigs)
    assert signature((1.0, 0.0)) == signature((1.0, 0.0)) == signature((1, 0))


def test_signature_treats_negative_zero_as_zero():
    assert signature((-0.0, 1.0)) == signature((0.0, 1.0))
    assert signature((-0.0, -0.0)) == signature((0, 0))


def _user_module(tmp_path) -> str:
    path = tmp_path / "user_rewards.py"
    path.write_text(
        textwrap.dedent("""
        import os, time
        def pid(**_):
            time.sleep(0.2)
            return float(os.getpid())
        def boom(solution_str, **_):
            raise RuntimeError("boom on " + solution_str)
        def slow(**_):
            time.sleep(30)
            return 1.0
        def crash(**_):
            os._exit(3)
        def nan(**_):
            return float("nan")
        def as_dict(num_tokens, **_):
            return {"score": num_tokens, "other": 1}
    """)
    )
    return str(path)


def test_failures_become_nan_counted_and_logged_once(tmp_path, caplog):
    f = _user_module(tmp_path)
    cfg = parse_config(
        {
            "timeout_s": 1.0,
            "rewards": [
                {"name": "ok", "fn": f"{f}:as_dict"},
                {"name": "boom", "fn": f"{f}:boom"},
                {"name": "slow", "fn": f"{f}:slow"},
                {"name": "crash", "fn": f"{f}:crash"},
                {"name": "nan", "fn": f"{f}:nan"},
                {"name": "after", "fn": "gsm8k.format"},
            ],
        }
    )
    scorer = MultiRewardScorer(cfg, max_workers=2)
    try:
        with caplog.at_level(logging.WARNING, logger="gdpo_verl.rewards"):
            start = time.monotonic()
            outs = [scorer.score_sync({"solution_str": f"s{i}", "num_tokens": 7}) for i in range(2)]
            assert time.monotonic() - start < 20
        for out in outs:
            assert out["ok"] == 7.0 and out["after"] == 0.0
            assert all(math.isnan(out[k]) for k in ("boom", "slow", "crash", "nan"))
            assert out[FAILURES_KEY] == 4.0
            assert out["score"] == 7.0
        assert scorer.failures[("boom", "RuntimeError")] == 2
        assert scorer.failures[("slow", "Timeout")] == 2
        assert scorer.failures[("crash", "WorkerCrashed")] == 2
        assert scorer.failures[("nan", "NaN")] == 2
        lines = [r.getMessage() for r in caplog.records]
        assert sum("'boom'" in m for m in lines) == 1 and "boom on s0" in "\n".join(lines)
        assert sum("'slow'" in m for m in lines) == 1
    finally:
        scorer.close()


def test_calls_run_in_parallel_processes(tmp_path):
    f = _user_module(tmp_path)
    scorer = MultiRewardScorer(parse_config({"rewards": [{"name": "pid", "fn": f"{f}:pid"}]}), max_workers=2)
    try:
        scorer.score_sync({"solution_str": ""})  # warm up
        futs = [scorer.submit({"solution_str": ""}) for _ in range(8)]
        pids = {scorer.finish(fu.result())["pid"] for fu in futs}
        assert len(pids) == 2 and os.getpid() not in pids
    finally:
        scorer.close()


def test_module_function_spec(tmp_path, monkeypatch):
    _user_module(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    scorer = MultiRewardScorer(parse_config({"rewards": [{"name": "d", "fn": "user_rewards:as_dict"}]}), 1)
    try:
        out = scorer.score_sync({"solution_str": "", "num_tokens": 3})
        assert out["d"] == 3.0 and SIGNATURE_KEY in out
    finally:
        scorer.close()


def test_inline_mode_without_processes():
    scorer = MultiRewardScorer(parse_config({"suite": "gsm8k"}), max_workers=0)
    out = scorer.score_sync({"solution_str": "<think>a</think>\n<answer>4</answer>", "ground_truth": "#### 4"})
    assert (out["correct"], out["integer"], out["format"], out["score"]) == (1.0, 1.0, 1.0, 3.0)


def test_sandboxed_suites_get_more_workers_by_default():
    assert MultiRewardScorer(parse_config({"suite": "math"}), max_workers=2).pool.max_workers == 2
    assert MultiRewardScorer(parse_config({"suite": "code"}), max_workers=2).pool.max_workers == 6  # three per core
    assert MultiRewardScorer(parse_config({"suite": "code", "max_workers": 3}), max_workers=2).pool.max_workers == 3
