"""Every bad GDPO setting is an error that names what is wrong."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from gdpo_verl.config import OPTION_KEYS, GDPOConfig, GDPOConfigError, missing_reward_keys_message


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


def test_conditions_resolve_to_columns():
    cfg = parse(gdpo={"conditions": {"format": {"on": "correct", "threshold": 1}}})
    (c,) = cfg.conditions
    assert (c.target, c.on, c.threshold) == ("format", "correct", 1.0)
    assert cfg.condition_columns == ((0, 1, 1.0),)


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
        ({"gdpo": {"bach_norm": "sample"}}, r"gdpo.bach_norm \(did you mean 'algorithm.gdpo.batch_norm'"),
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
    assert (c.target, c.on, c.threshold) == ("format", "correct", 0.5)


def test_no_reward_keys_is_an_error_never_the_summed_score():
    for alg in ({}, {"adv_estimator": "gdpo"}, {"gdpo_reward_keys": []}, None):
        with pytest.raises(GDPOConfigError) as e:
            GDPOConfig.from_algorithm(alg)
        assert str(e.value) == missing_reward_keys_message()
    assert "[score]" in missing_reward_keys_message()
    assert GDPOConfig.from_algorithm({"gdpo_reward_keys": ["score"]}).reward_keys == ("score",)


@pytest.mark.parametrize(
    ("alg", "match"),
    [
        ({"gdpo_reward_key": ["a"]}, r"algorithm.gdpo_reward_key \(did you mean 'algorithm.gdpo_reward_keys'\?\)"),
        (
            {"gdpo_reward_keys": ["a", "b"], "gdpo_reward_weigths": [1, 2]},
            r"algorithm.gdpo_reward_weigths \(did you mean 'algorithm.gdpo_reward_weights'\?\)",
        ),
        ({"gdpo_reward_keys": ["a"], "gdpo_opts": {}}, r"unknown key algorithm.gdpo_opts"),
        ({"gdpo_reward_keys": ["a"], "gdpo": {"nan_polcy": "zero"}}, r"did you mean 'algorithm.gdpo.nan_policy'"),
    ],
)
def test_misspelled_gdpo_keys_are_named_with_a_suggestion(alg, match):
    with pytest.raises(GDPOConfigError, match=match):
        GDPOConfig.from_algorithm(alg)


def test_every_known_option_is_accepted():
    # the one list of options: each name passes the unknown-option check (values are validated elsewhere)
    for name in OPTION_KEYS:
        with pytest.raises(GDPOConfigError) as e:
            GDPOConfig.from_algorithm({"gdpo_reward_keys": ["a"], "gdpo": {name: object()}})
        assert "unknown option" not in str(e.value)


def test_parse_once_per_config_object():
    from gdpo_verl.config import parse_once

    alg = OmegaConf.create({"gdpo_reward_keys": ["a", "b"], "gdpo": {"aggregation": "cv"}})
    first = parse_once(alg)
    assert parse_once(alg) is first
    other = parse_once(OmegaConf.create({"gdpo_reward_keys": ["a", "b"]}))
    assert other is not first and other.aggregation == "gdpo"
    bad = {"gdpo_reward_keys": ["a"], "gdpo": {"eps_group": -1}}
    for _ in range(2):  # an invalid config is not remembered: it stops every call
        with pytest.raises(GDPOConfigError, match="eps_group must be >= 0"):
            parse_once(bad)


def test_config_and_check_need_no_torch():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from gdpo_verl.config import GDPOConfig\n"
        "from gdpo_verl.check.rewards import manager_reward_names\n"
        "c = GDPOConfig.from_algorithm({'gdpo_reward_keys': ['a', 'b'], 'gdpo_reward_weights': "
        "[1, {'schedule': 'linear', 'start': 0, 'end': 1, 'steps': 10}], 'gdpo': {'aggregation': 'cv', "
        "'aggregation_args': {'ranges': {'a': [-3, 3]}}}})\n"
        "print(dict(c.aggregation_args)['eps'], c.weight_schedule[1].at(5), manager_reward_names({'suite': 'gsm8k'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1e-08 0.5 (['correct', 'integer', 'format'], None)"
