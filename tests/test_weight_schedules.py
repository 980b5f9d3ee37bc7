"""gdpo_reward_weights as schedules over training steps: values, errors, and the step from verl's V1 trainer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gdpo_verl.aggregations import AggregationError
from gdpo_verl.aggregations.schedules import parse_schedule
from gdpo_verl.config import GDPOConfig, GDPOConfigError
from gdpo_verl.estimator import compute_gdpo

LIN = {"schedule": "linear", "start": 0.0, "end": 1.0, "steps": 10, "begin": 5}
COS = {"schedule": "cosine", "start": 2.0, "end": 0.0, "steps": 4}
PW = {"schedule": "piecewise", "points": [[0, 1.0], [3, 0.5], [7, 0.25]]}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (1.5, {0: 1.5, 100: 1.5}),
        ({"schedule": "constant", "value": 0.3}, {0: 0.3, 9: 0.3}),
        (LIN, {0: 0.0, 5: 0.0, 6: 0.1, 10: 0.5, 15: 1.0, 99: 1.0}),
        (COS, {0: 2.0, 1: 1.0 + math.cos(math.pi / 4), 2: 1.0, 4: 0.0, 9: 0.0}),
        (PW, {0: 1.0, 2: 1.0, 3: 0.5, 6: 0.5, 7: 0.25, 50: 0.25}),
    ],
)
def test_schedule_values(spec, expected):
    s = parse_schedule("k", spec)
    for step, value in expected.items():
        assert s.at(step) == pytest.approx(value, abs=1e-12), step


def cfg(weights):
    return GDPOConfig.from_algorithm({"gdpo_reward_keys": ["a", "b"], "gdpo_reward_weights": weights})


COMPS = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
INDEX = [0, 0, 0, 1, 1, 1]


@pytest.mark.parametrize("step", [1, 8, 12, 40])
def test_scheduled_run_equals_constant_weights_of_that_step(step):
    out, m = compute_gdpo(COMPS, INDEX, torch.ones(6), cfg([1.0, LIN]), step=step)
    w = parse_schedule("b", LIN).at(step)
    same, _ = compute_gdpo(COMPS, INDEX, torch.ones(6), cfg([1.0, w]) if w else cfg([1.0, 0.0]))
    assert torch.equal(out, same)
    assert (m["gdpo/a/weight"], m["gdpo/b/weight"]) == (1.0, pytest.approx(w))


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        (
            [1.0, {"schedule": "exp", "rate": 1}],
            r"schedule must be one of \['constant', 'linear', 'cosine', 'piecewise'\]",
        ),
        ([1.0, {**LIN, "warmup": 3}], r"schedule 'linear' takes .*unknown \['warmup'\]"),
        ([1.0, {"schedule": "linear", "start": 0}], r"missing \['end', 'steps'\]"),
        ([1.0, {**PW, "points": [[3, 1.0], [3, 0.0]]}], "steps must increase"),
        ([{**LIN, "steps": 0}, 1.0], r"gdpo_reward_weights\[a\]\.steps must be an integer >= 1"),
        ([LIN], "1 entries"),
    ],
)
def test_bad_schedules_are_config_errors(weights, message):
    with pytest.raises(GDPOConfigError, match=message):
        cfg(weights)


def test_all_zero_at_a_step_and_no_step_stop_the_run():
    c = cfg([{**LIN, "begin": 0}, {"schedule": "constant", "value": 0.0}])
    with pytest.raises(AggregationError, match="all zero at step 0"):
        compute_gdpo(COMPS, INDEX, torch.ones(6), c, step=0)
    with pytest.raises(AggregationError, match="trainer.use_v1=true"):
        compute_gdpo(COMPS, INDEX, torch.ones(6), c)


@pytest.mark.verl
def test_v1_trainer_context_hands_the_step_to_the_estimator():
    from gdpo_verl_plugins import adv_estimator, metrics_bridge, v1_trainer
    from omegaconf import OmegaConf

    config = OmegaConf.create(
        {"adv_estimator": "gdpo", "gdpo_reward_keys": ["a", "b"], "gdpo_reward_weights": [1.0, LIN]}
    )
    ntb = {"a": COMPS[:, 0].numpy(), "b": COMPS[:, 1].numpy()}
    mask = torch.ones(6, 3)
    args = (torch.zeros(6, 3), mask, np.array([f"u{i}" for i in INDEX], dtype=object))
    token = v1_trainer._current.set(v1_trainer.BatchContext({}, None, 10))
    try:
        with metrics_bridge.collect() as figures:
            adv_estimator.compute_gdpo_outcome_advantage(*args, config=config, non_tensor_batch=ntb)
        assert figures["gdpo/b/weight"] == pytest.approx(0.5)
    finally:
        v1_trainer._current.reset(token)
    with pytest.raises(AggregationError, match="trainer.use_v1=true"):
        adv_estimator.compute_gdpo_outcome_advantage(*args, config=config, non_tensor_batch=ntb)
