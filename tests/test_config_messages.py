# ruff: noqa: E501 (messages are asserted whole)
"""Every GDPO config error, word for word: the message is what a user reads to fix the setting (what is wrong, what
is accepted), so its text is asserted whole, not by a fragment."""

from __future__ import annotations

import pytest

from gdpo_verl.aggregations.schedules import parse_schedule, weights_at
from gdpo_verl.conditions import conditioned, parse_condition
from gdpo_verl.config import GDPOConfig, GDPOConfigError

K = ["fmt", "acc"]
CASES = [
    (
        {"gdpo_reward_keys": K, "gdpo": {"aggregation": "os:path:join"}},
        "algorithm.gdpo.aggregation='os:path:join': aggregation 'os:path:join': cannot load 'path:join' from 'os': module 'os' has no attribute 'path:join'",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo_reward_weights": [float("nan"), float("-inf")]},
        "algorithm.gdpo_reward_weights must be finite; got fmt=nan, acc=-inf",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo": {"conditions": {"fmt": 5}}},
        "algorithm.gdpo.conditions.fmt needs 'on' (and 'threshold'), got 5",
    ),
    (
        {"gdpo_reward_keys": []},
        "GDPO needs algorithm.gdpo_reward_keys, the reward components your reward function returns, e.g. +algorithm.gdpo_reward_keys=[format,correct]. GDPO does not fall back to the summed score (that would be GRPO); for a single-reward run list it explicitly: +algorithm.gdpo_reward_keys=[score]",
    ),
    ({"gdpo_reward_keys": "fmt"}, "algorithm.gdpo_reward_keys must be a list of names, got 'fmt'"),
    ({"gdpo_reward_keys": ["a", "a"]}, "algorithm.gdpo_reward_keys has duplicates: ['a', 'a']"),
    ({"gdpo_reward_keys": ["a", ""]}, "algorithm.gdpo_reward_keys must be a list of names, got ['a', '']"),
    ({"gdpo_reward_keys": K, "gdpo": 3}, "algorithm.gdpo must be a mapping of options, got 3"),
    ([1, 2], "algorithm config must be a mapping, got list"),
    (
        {"gdpo_reward_keys": K, "gdpo_reward_weights": [1, float("inf")]},
        "algorithm.gdpo_reward_weights must be finite; got acc=inf",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo_reward_weights": 3},
        "algorithm.gdpo_reward_weights=3 does not give one weight per key of algorithm.gdpo_reward_keys=['fmt', 'acc']",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo_reward_weights": (1, 2, 3)},
        "algorithm.gdpo_reward_weights=[1, 2, 3] does not give one weight per key of algorithm.gdpo_reward_keys=['fmt', 'acc']",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo_reward_weights": [1, 2, 3]},
        "algorithm.gdpo_reward_weights=[1, 2, 3] does not give one weight per key of algorithm.gdpo_reward_keys=['fmt', 'acc']",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo_reward_weights": [1, "x"]},
        "algorithm.gdpo_reward_weights must be numbers, got [1, 'x']",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo_reward_weights": [0, 0]},
        "algorithm.gdpo_reward_weights are all zero for keys ['fmt', 'acc']: nothing to learn",
    ),
    ({"gdpo_reward_keys": K, "gdpo": {"eps_batch": -1}}, "algorithm.gdpo.eps_batch must be >= 0, got -1"),
    ({"gdpo_reward_keys": K, "gdpo": {"eps_group": "x"}}, "algorithm.gdpo.eps_group must be a number, got 'x'"),
    ({"gdpo_reward_keys": K, "gdpo": {"kl_weight": float("nan")}}, "algorithm.gdpo.kl_weight must be finite, got nan"),
    (
        {"gdpo_reward_keys": K, "gdpo": {"nan_policy": "drop"}},
        "algorithm.gdpo.nan_policy must be one of ['exclude', 'zero', 'error'], got 'drop'",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo": {"impl": "x"}},
        "algorithm.gdpo.impl must be one of ['gdpo_verl', 'verl'], got 'x'",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo": {"kl_in_reward": "component"}},
        "algorithm.gdpo.kl_in_reward=component was removed (it gave rollouts with every reward missing an advantage). Use kl_in_reward=raw (the KL shaping added to the combined advantage, the default) or put the KL in the loss (algorithm.use_kl_in_reward=False, actor_rollout_ref.actor.use_kl_loss=True).",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo": {"kl_in_reward": "scaled"}},
        "algorithm.gdpo.kl_in_reward must be one of ['raw', 'error'], got 'scaled'",
    ),
    (
        {"gdpo_reward_keys": K, "use_kl_in_reward": True, "gdpo": {"kl_in_reward": "error"}},
        "algorithm.use_kl_in_reward=True but algorithm.gdpo.kl_in_reward=error: GDPO refuses to drop the KL shaping. Use kl_in_reward=raw (added to the combined advantage), or move the KL into the loss (actor_rollout_ref.actor.use_kl_loss=True).",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo": {"batch_nrom": "token"}},
        "unknown option algorithm.gdpo.batch_nrom (did you mean 'algorithm.gdpo.batch_norm'?); valid: ['algorithm.gdpo.batch_norm', 'algorithm.gdpo.eps_group', 'algorithm.gdpo.eps_batch', 'algorithm.gdpo.std_norm', 'algorithm.gdpo.conditions', 'algorithm.gdpo.nan_policy', 'algorithm.gdpo.kl_in_reward', 'algorithm.gdpo.kl_weight', 'algorithm.gdpo.impl', 'algorithm.gdpo.aggregation', 'algorithm.gdpo.aggregation_args']",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo": {"batch_norm": "token", "zzz": 1, "aaa": 2}},
        "unknown option algorithm.gdpo.aaa; algorithm.gdpo.zzz; valid: ['algorithm.gdpo.batch_norm', 'algorithm.gdpo.eps_group', 'algorithm.gdpo.eps_batch', 'algorithm.gdpo.std_norm', 'algorithm.gdpo.conditions', 'algorithm.gdpo.nan_policy', 'algorithm.gdpo.kl_in_reward', 'algorithm.gdpo.kl_weight', 'algorithm.gdpo.impl', 'algorithm.gdpo.aggregation', 'algorithm.gdpo.aggregation_args']",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo_reward_weigths": [1, 1]},
        "unknown key algorithm.gdpo_reward_weigths (did you mean 'algorithm.gdpo_reward_weights'?); valid: ['algorithm.gdpo_reward_keys', 'algorithm.gdpo_reward_weights', 'algorithm.gdpo']",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo": {"std_norm": {"x": False}}},
        "algorithm.gdpo.std_norm names ['x'], not in gdpo_reward_keys=['fmt', 'acc']",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo": {"std_norm": [True]}},
        "algorithm.gdpo.std_norm=[True] must be a bool, a {key: bool} map or one per key",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo": {"conditions": {"fmt": {"on": "zzz"}}}},
        "algorithm.gdpo.conditions.fmt.on='zzz' must be another key of ['fmt', 'acc']",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo": {"conditions": {"fmt": {"on": "fmt"}}}},
        "algorithm.gdpo.conditions.fmt.on='fmt' must be another key of ['fmt', 'acc']",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo": {"conditions": {"fmt": {"on": "acc", "threshold": "x"}}}},
        "algorithm.gdpo.conditions.fmt.threshold must be a finite number, got 'x'",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo": {"conditions": {"fmt": {"on": "acc", "when": 1}}}},
        "algorithm.gdpo.conditions.fmt: unknown option(s) ['when']; expected 'on' and 'threshold'",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo": {"conditions": {"fmt": {"threshold": 1}}}},
        "algorithm.gdpo.conditions.fmt needs 'on' (and 'threshold'), got {'threshold': 1}",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo": {"conditions": {"zz": {"on": "acc"}}}},
        "algorithm.gdpo.conditions: 'zz' is not in gdpo_reward_keys=['fmt', 'acc']",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo": {"conditions": [1]}},
        "algorithm.gdpo.conditions must map target -> {on, threshold}, got [1]",
    ),
    ({"gdpo_reward_keys": K, "gdpo": {"aggregation": ""}}, "algorithm.gdpo.aggregation must be a name, got ''"),
    (
        {"gdpo_reward_keys": K, "gdpo": {"aggregation": "cv", "aggregation_args": [1]}},
        "algorithm.gdpo.aggregation='cv': aggregation_args must be a mapping, got [1]",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo": {"aggregation": "cv", "aggregation_args": {"eps": 0}}},
        "algorithm.gdpo.aggregation='cv': aggregation_args.eps must be > 0, got 0",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo": {"aggregation": "cv", "aggregation_args": {"ranges": [0, 1]}}},
        "algorithm.gdpo.aggregation='cv': aggregation_args.ranges must map reward key -> [lo, hi], got [0, 1]",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo": {"aggregation": "cv", "aggregation_args": {"ranges": {"acc": 5}}}},
        "algorithm.gdpo.aggregation='cv': aggregation_args.ranges.acc must be [lo, hi], got 5",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo": {"aggregation": "cv", "aggregation_args": {"ranges": {"acc": [1, 1]}}}},
        "algorithm.gdpo.aggregation='cv': aggregation_args.ranges.acc must be finite with lo < hi, got [1, 1]",
    ),
    (
        {
            "gdpo_reward_keys": K,
            "gdpo": {"aggregation": "cv", "aggregation_args": {"ranges": {"z": [0, 1], "y": [0, 1]}}},
        },
        "algorithm.gdpo.aggregation='cv': aggregation_args.ranges names ['y', 'z'], not in gdpo_reward_keys=['fmt', 'acc']",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo": {"aggregation": "group_variance", "aggregation_args": {"power": 0}}},
        "algorithm.gdpo.aggregation='group_variance': aggregation_args.power must be > 0, got 0",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo": {"aggregation": "saturation", "aggregation_args": {"gamma": -0.5}}},
        "algorithm.gdpo.aggregation='saturation': aggregation_args.gamma must be >= 0, got -0.5",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo": {"aggregation": "conflict", "aggregation_args": {"ratio_threshold": "a"}}},
        "algorithm.gdpo.aggregation='conflict': aggregation_args.ratio_threshold must be a number, got 'a'",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo": {"aggregation": "conflict", "aggregation_args": {"ratio_threshold": 2}}},
        "algorithm.gdpo.aggregation='conflict': aggregation_args.ratio_threshold must be >= 0 and <= 1, got 2",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo": {"aggregation": "conflict", "aggregation_args": {"mode": "soft"}}},
        "algorithm.gdpo.aggregation='conflict': aggregation_args.mode must be one of ['hard', 'ratio'], got 'soft'",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo": {"aggregation": "gdpo", "aggregation_args": {"x": 1}}},
        "algorithm.gdpo.aggregation='gdpo': aggregation 'gdpo' has no option(s) ['x']; its options: none",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo": {"aggregation": "os:no_such_fn"}},
        "algorithm.gdpo.aggregation='os:no_such_fn': aggregation 'os:no_such_fn': cannot load 'no_such_fn' from 'os': module 'os' has no attribute 'no_such_fn'",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo": {"aggregation": "os:sep"}},
        "algorithm.gdpo.aggregation='os:sep': aggregation 'os:sep' is not callable: '/'",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo": {"aggregation": "sat"}},
        "algorithm.gdpo.aggregation='sat': unknown aggregation 'sat'; available: ['gdpo', 'saturation', 'cv', 'group_variance', 'conflict'], or 'package.module:function', or an entry point in the group 'gdpo_verl.aggregations'",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo_reward_weights": [1, {"schedule": "linear", "start": 0, "end": 1}]},
        "algorithm.gdpo_reward_weights[acc]: schedule 'linear' takes ['begin', 'end', 'start', 'steps']; missing ['steps']",
    ),
    (
        {
            "gdpo_reward_keys": K,
            "gdpo_reward_weights": [1, {"schedule": "linear", "start": 0, "end": 1, "steps": 2, "every": 3}],
        },
        "algorithm.gdpo_reward_weights[acc]: schedule 'linear' takes ['begin', 'end', 'start', 'steps']; unknown ['every']",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo_reward_weights": [1, {"schedule": "step"}]},
        "algorithm.gdpo_reward_weights[acc]: schedule must be one of ['constant', 'linear', 'cosine', 'piecewise'], got 'step'",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo_reward_weights": [1, {"schedule": "piecewise", "points": []}]},
        "algorithm.gdpo_reward_weights[acc].points must be a non-empty list of [step, value], got []",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo_reward_weights": [1, {"schedule": "piecewise", "points": "ab"}]},
        "algorithm.gdpo_reward_weights[acc].points must be a non-empty list of [step, value], got 'ab'",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo_reward_weights": [1, {"schedule": "piecewise", "points": [[0, 1], 5]}]},
        "algorithm.gdpo_reward_weights[acc].points: each point is [step, value], got 5",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo_reward_weights": [1, {"schedule": "piecewise", "points": [[0, 1], "ab"]}]},
        "algorithm.gdpo_reward_weights[acc].points: each point is [step, value], got 'ab'",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo_reward_weights": [1, {"schedule": "piecewise", "points": [[5, 1], [5, 2]]}]},
        "algorithm.gdpo_reward_weights[acc].points: steps must increase, got [5, 5]",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo_reward_weights": [1, {"schedule": "piecewise", "points": [[-1, 1]]}]},
        "algorithm.gdpo_reward_weights[acc].points step must be an integer >= 0, got -1",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo_reward_weights": [1, {"schedule": "piecewise", "points": [[1, "x"]]}]},
        "algorithm.gdpo_reward_weights[acc].points value must be a number, got 'x'",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo_reward_weights": [1, {"schedule": "constant", "value": "x"}]},
        "algorithm.gdpo_reward_weights[acc].value must be a number, got 'x'",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo_reward_weights": [{"schedule": "linear", "start": "a", "end": 1, "steps": 2}, 1]},
        "algorithm.gdpo_reward_weights[fmt].start must be a number, got 'a'",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo_reward_weights": [{"schedule": "linear", "start": 0, "end": "b", "steps": 2}, 1]},
        "algorithm.gdpo_reward_weights[fmt].end must be a number, got 'b'",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo_reward_weights": [{"schedule": "linear", "start": 0, "end": 1, "steps": "c"}, 1]},
        "algorithm.gdpo_reward_weights[fmt].steps must be a number, got 'c'",
    ),
    (
        {
            "gdpo_reward_keys": K,
            "gdpo_reward_weights": [1, {"schedule": "cosine", "start": 0, "end": 1, "steps": 2, "begin": 0.5}],
        },
        "algorithm.gdpo_reward_weights[acc].begin must be an integer >= 0, got 0.5",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo_reward_weights": [{"schedule": "constant", "value": 1}]},
        "algorithm.gdpo_reward_weights has 1 entries for gdpo_reward_keys=['fmt', 'acc']: one per key",
    ),
    (
        {"gdpo_reward_keys": K, "gdpo_reward_weights": ["x", {"schedule": "constant", "value": 1}]},
        "algorithm.gdpo_reward_weights[fmt] must be a number, got 'x'",
    ),
]


@pytest.mark.parametrize(("alg", "message"), CASES)
def test_config_error_message(alg, message):
    with pytest.raises(GDPOConfigError) as err:
        GDPOConfig.from_algorithm(alg)
    assert str(err.value) == message


def test_schedule_errors_at_a_step():
    schedules = (parse_schedule("a", {"schedule": "linear", "start": 1, "end": 0, "steps": 2}), parse_schedule("b", 0))
    with pytest.raises(ValueError) as err:
        weights_at(("a", "b"), schedules, None)
    assert str(err.value) == (
        "algorithm.gdpo_reward_weights holds a schedule, but this trainer path does not give the estimator the "
        "training step (only verl's V1 trainer does: trainer.use_v1=true). Use constant weights here."
    )
    assert weights_at(("a", "b"), schedules, 1) == (0.5, 0.0)
    with pytest.raises(ValueError) as err:
        weights_at(("a", "b"), schedules, 5)
    assert str(err.value) == "algorithm.gdpo_reward_weights are all zero at step 5 for keys ['a', 'b']"


def test_schedule_values():
    piece = parse_schedule("a", {"schedule": "piecewise", "points": [[2, 0.5], [4, 1.5]]})
    assert [piece.at(t) for t in (0, 1, 2, 3, 4, 9)] == [0.5, 0.5, 0.5, 0.5, 1.5, 1.5]
    cos = parse_schedule("a", {"schedule": "cosine", "start": 1.0, "end": 3.0, "steps": 4, "begin": 2})
    assert [cos.at(t) for t in (0, 2, 4, 6, 8)] == pytest.approx([1.0, 1.0, 2.0, 3.0, 3.0])
    lin = parse_schedule("a", {"schedule": "linear", "start": 0.0, "end": 1.0, "steps": 4})
    assert [lin.at(t) for t in (0, 1, 2, 4, 5)] == [0.0, 0.25, 0.5, 1.0, 1.0]
    cfg = GDPOConfig.from_algorithm(
        {
            "gdpo_reward_keys": K,
            "gdpo_reward_weights": [{"schedule": "linear", "start": 2.0, "end": 1.0, "steps": 4}, 1],
        }
    )
    assert cfg.weights == (2.0, 1.0)  # the weights at step 0


def test_condition_parsing_and_eq8_on_floats():
    c = parse_condition("w", "fmt", {"on": "acc"})
    assert (c.target, c.on, c.threshold) == ("fmt", "acc", 1.0)  # threshold defaults to 1
    assert parse_condition("w", "fmt", {True: "acc", "threshold": 0.5}).on == "acc"  # YAML 1.1 reads on: as True
    with pytest.raises(ValueError) as err:
        parse_condition("w", "fmt", {"on": "fmt"})
    assert str(err.value) == "w.on='fmt' must be another key"
    with pytest.raises(ValueError) as err:
        parse_condition("w", "fmt", {"on": "zzz"}, K)
    assert str(err.value) == "w.on='zzz' must be another key of ['fmt', 'acc']"
    assert conditioned(2.0, 0.5, 0.5) == 2.0  # gate == threshold passes
    assert conditioned(2.0, 0.4, 0.5) == 0.0
    assert conditioned(2.0, float("nan"), 0.5) != conditioned(2.0, float("nan"), 0.5)  # NaN: missing
    assert conditioned(float("nan"), 1.0, 0.5) != conditioned(float("nan"), 1.0, 0.5)


def test_std_norm_forms():
    def std_norm(raw, flag=True):
        alg = {"gdpo_reward_keys": K, "gdpo": {"std_norm": raw}, "norm_adv_by_std_in_grpo": flag}
        return GDPOConfig.from_algorithm(alg).std_norm

    assert std_norm(None) == (True, True)
    assert std_norm(False) == (False, False)
    assert std_norm([True, False]) == (True, False)
    assert std_norm([0, 1]) == (False, True)
    assert std_norm({"acc": False}) == (True, False)
    assert std_norm({"acc": 0}) == (True, False)
    assert std_norm({"fmt": False, "acc": True}) == (False, True)
    assert std_norm([True, True], flag=False) == (False, False)


def test_did_you_mean_names_the_closest_key():
    from gdpo_verl.config import did_you_mean

    known = ["eps_group", "eps_batch", "batch_norm"]
    assert did_you_mean("eps_gruop", known) == " (did you mean 'eps_group'?)"
    assert did_you_mean("eps_gruop", known, "algorithm.gdpo.") == " (did you mean 'algorithm.gdpo.eps_group'?)"
    assert did_you_mean("zzz", known) == ""
