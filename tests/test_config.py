"""Every bad GDPO setting is an error that names what is wrong."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from gdpo_verl.config import GDPOConfig, GDPOConfigError


def parse(**alg):
    return GDPOConfig.from_algorithm({"gdpo_reward_keys": ["format", "correct"], **alg})


def test_defaults_and_verl_builtin_keys():
    cfg = GDPOConfig.from_algorithm(
        OmegaConf.create({"gdpo_reward_keys": ["a", "b"], "gdpo_reward_weights": [1, 0.5], "adv_estimator": "gdpo"})
    )
    assert cfg.reward_keys == ("a", "b") and cfg.weights == (1.0, 0.5)
    assert (cfg.batch_norm, cfg.eps_group, cfg.eps_batch, cfg.nan_policy) == ("sample", 1e-6, 1e-6, "exclude")
    assert cfg.std_norm == (True, True)


def test_norm_adv_by_std_in_grpo_is_honoured_and_per_reward_toggle():
    assert parse(norm_adv_by_std_in_grpo=False).std_norm == (False, False)
    assert parse(gdpo={"std_norm": {"format": False}}).std_norm == (False, True)


def test_conditions_resolve_to_indices():
    cfg = parse(gdpo={"conditions": {"format": {"on": "correct", "threshold": 1}}})
    (c,) = cfg.conditions
    assert (c.target, c.on, c.threshold) == (0, 1, 1.0)


@pytest.mark.parametrize(
    "alg, match",
    [
        ({"gdpo_reward_keys": None}, "needs algorithm.gdpo_reward_keys"),
        ({"gdpo_reward_keys": "format"}, "must be a list of names"),
        ({"gdpo_reward_keys": ["a", "a"]}, "duplicates"),
        ({"gdpo_reward_weights": [1.0]}, r"gdpo_reward_weights=\[1.0\] does not give one weight per key.*format"),
        ({"gdpo_reward_weights": [1.0, 2.0, 3.0]}, "does not give one weight per key"),
        ({"gdpo_reward_weights": [1.0, float("inf")]}, "must be finite; got correct=inf"),
        ({"gdpo_reward_weights": [0, 0]}, "all zero"),
        ({"gdpo_reward_weights": ["x", 1]}, "must be numbers"),
        ({"gdpo": {"batch_norm": "tokens"}}, r"batch_norm must be one of \['sample', 'token', 'none'\]"),
        ({"gdpo": {"eps_group": -1}}, "eps_group must be >= 0"),
        ({"gdpo": {"nan_policy": "drop"}}, "nan_policy"),
        ({"gdpo": {"bach_norm": "sample"}}, r"unknown algorithm.gdpo option\(s\) \['bach_norm'\]"),
        ({"gdpo": {"std_norm": {"lenght": False}}}, "std_norm names"),
        ({"gdpo": {"conditions": {"length": {"on": "correct"}}}}, "'length' is not in gdpo_reward_keys"),
        ({"gdpo": {"conditions": {"format": {"on": "format"}}}}, "must be another key"),
        ({"gdpo": {"conditions": {"format": {"threshold": 1}}}}, "needs 'on'"),
        ({"gdpo": {"conditions": {"format": {"on": "correct", "treshold": 0.5}}}}, r"unknown option.*'treshold'"),
        ({"use_kl_in_reward": True, "gdpo": {"kl_in_reward": "error"}}, "refuses to drop the KL"),
        ({"gdpo": {"impl": "builtin"}}, "impl must be one of"),
    ],
)
def test_bad_settings_are_named(alg, match):
    with pytest.raises(GDPOConfigError, match=match):
        parse(**alg)


def test_condition_yaml_on_key_read_as_true():
    # YAML 1.1 (OmegaConf's loader) turns an unquoted `on:` key into True; it still means `on`.
    raw = OmegaConf.to_container(OmegaConf.create("format:\n  on: correct\n  threshold: 0.5\n"))
    assert True in raw["format"]
    (c,) = parse(gdpo={"conditions": raw}).conditions
    assert (c.target, c.on, c.threshold) == (0, 1, 0.5)
