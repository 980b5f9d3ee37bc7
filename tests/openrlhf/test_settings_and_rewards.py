"""The launcher's command line (OpenRLHF's own parser and checks, plus --gdpo.*): every GDPO setting is validated
before Ray starts with the verl path's messages; OpenRLHF settings GDPO cannot honour are refused. The reward helper
emits every component and stops on an absent one; the tool-calling reward file cuts the response out of the query."""

from __future__ import annotations

import json
import logging
import math

import pytest
import torch

from gdpo_verl.config import GDPOConfig, GDPOConfigError, missing_reward_keys_message

pytest.importorskip("openrlhf")

BASE = [
    "--actor.model_name_or_path", "unused", "--reward.remote_url", "reward_func.py",
    "--actor.num_gpus_per_node", "1", "--rollout.n_samples_per_prompt", "4",
]  # fmt: skip
GDPO = ["--algo.advantage.estimator", "gdpo", "--gdpo.reward_keys", "correct,format"]


def _parse(*extra, base=BASE):
    from gdpo_verl_plugins.openrlhf.train_ppo_ray import parse_args

    return parse_args([*base, *extra])


def _refused(capsys, *extra, base=BASE) -> str:
    with pytest.raises(SystemExit) as exc:
        _parse(*extra, base=base)
    assert exc.value.code == 2
    return capsys.readouterr().err


def _verl_message(algorithm) -> str:
    with pytest.raises(GDPOConfigError) as exc:
        GDPOConfig.from_algorithm(algorithm)
    return str(exc.value)


KEYS = ["correct", "format"]


@pytest.mark.parametrize(
    ("flags", "algorithm"),
    [
        (["--gdpo.batch_norm", "bogus"], {"gdpo": {"batch_norm": "bogus"}}),
        (["--gdpo.reward_weights", "1"], {"gdpo_reward_weights": [1]}),
        (["--gdpo.reward_weights", "1,inf"], {"gdpo_reward_weights": [1, math.inf]}),
        (["--gdpo.eps_group", "-1"], {"gdpo": {"eps_group": -1}}),
        (["--gdpo.nan_policy", "drop"], {"gdpo": {"nan_policy": "drop"}}),
        (["--gdpo.std_norm", '{"length": false}'], {"gdpo": {"std_norm": {"length": False}}}),
        (
            ["--gdpo.conditions", '{"format": {"on": "length", "threshold": 1}}'],
            {"gdpo": {"conditions": {"format": {"on": "length", "threshold": 1}}}},
        ),
        (["--gdpo.aggregation", "no_such_aggregation"], {"gdpo": {"aggregation": "no_such_aggregation"}}),
    ],
    ids=["batch_norm", "weights_count", "weights_inf", "eps", "nan_policy", "std_norm", "conditions", "aggregation"],
)
def test_bad_settings_stop_before_ray_with_verl_messages(capsys, flags, algorithm):
    err = _refused(capsys, *GDPO, *flags)
    assert _verl_message({"gdpo_reward_keys": KEYS, **algorithm}) in err
    assert "--gdpo.<option> is algorithm.gdpo.<option>" in err


def test_no_reward_keys_is_the_verl_message(capsys):
    err = _refused(capsys, "--algo.advantage.estimator", "gdpo")
    assert missing_reward_keys_message() in err


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--rollout.n_samples_per_prompt", "1"], "--rollout.n_samples_per_prompt=1"),
        (["--algo.advantage.gamma", "0.9"], "--algo.advantage.gamma=0.9"),
        (["--algo.advantage.no_std_norm"], "--gdpo.std_norm false"),
        (["--reward.overlong_buffer_len", "64"], "--reward.overlong_buffer_len=64.0 changes OpenRLHF's summed reward"),
        (["--reward.stop_properly_penalty_coef", "0.5"], "--reward.stop_properly_penalty_coef=0.5"),
        (["--gdpo.kl_weight", "2"], "--gdpo.kl_weight is not used on OpenRLHF"),
        (["--gdpo.impl", "verl"], "--gdpo.impl is not used on OpenRLHF"),
        (
            ["--gdpo.reward_weights", '[{"schedule": "linear", "start": 1, "end": 0, "steps": 10}, 1]'],
            "schedule over training steps",
        ),
    ],
    ids=["n1", "gamma", "no_std_norm", "overlong", "stop_properly", "kl_weight", "impl", "schedule"],
)
def test_openrlhf_settings_gdpo_cannot_honour_are_refused(capsys, extra, needle):
    assert needle in _refused(capsys, *GDPO, *extra)


def test_reward_model_instead_of_a_function_is_refused(capsys):
    base = ["--actor.model_name_or_path", "m", "--reward.model_name_or_path", "rm", "--actor.num_gpus_per_node", "1"]
    assert "no reward function" in _refused(capsys, *GDPO, base=base)


def test_gdpo_flags_without_the_estimator_are_refused(capsys):
    assert "they would be ignored" in _refused(capsys, "--gdpo.reward_keys", "correct")


def test_settings_reach_args_and_parse_like_verl():
    from gdpo_verl_plugins.openrlhf import settings

    conditions = {"format": {"on": "correct", "threshold": 1}}
    args = _parse(
        *GDPO, "--gdpo.reward_weights", "1,0.5", "--gdpo.std_norm", '{"format": false}',
        "--gdpo.conditions", json.dumps(conditions), "--gdpo.batch_norm", "token", "--gdpo.eps_group", "1e-4",
    )  # fmt: skip
    assert args.algo.advantage.estimator == "gdpo" and args.critic.model_name_or_path is None  # OpenRLHF's own rule
    cfg = settings.config_from_args(args)
    verl = GDPOConfig.from_algorithm(
        {
            "gdpo_reward_keys": KEYS,
            "gdpo_reward_weights": [1, 0.5],
            "gdpo": {"std_norm": {"format": False}, "conditions": conditions, "batch_norm": "token", "eps_group": 1e-4},
        }
    )
    assert cfg == verl
    assert _parse("--algo.advantage.estimator", "group_norm").algo.advantage.estimator == "group_norm"


def test_component_logs_every_key_nan_for_none_error_for_absent(caplog):
    from gdpo_verl_plugins.openrlhf.rewards import MissingComponentKeyError, component_logs

    logs = component_logs({"correct": None, "format": torch.tensor(1), "extra": "ignored"}, KEYS)
    assert list(logs) == KEYS and math.isnan(logs["correct"]) and logs["format"] == 1.0
    with caplog.at_level(logging.ERROR, logger="gdpo_verl"), pytest.raises(MissingComponentKeyError) as exc:
        component_logs({"correct": 1.0, "lenght": 0.0}, KEYS)
    assert "['format'] missing" in str(exc.value) and "['correct', 'lenght']" in str(exc.value)
    assert "['format'] missing" in caplog.text  # OpenRLHF logs a raising reward function at INFO only
    with pytest.raises(TypeError, match="'format' holds a non-numeric value 'yes'"):
        component_logs({"correct": 1.0, "format": "yes"}, KEYS)


def test_reward_func_matches_openrlhf_contract():
    from gdpo_verl_plugins.openrlhf.rewards import reward_func

    rows = {"a": {"correct": 1.0, "format": None}, "b": {"correct": 0.0, "format": 1.0, "score": 7.0}}
    fn = reward_func(lambda query, prompt, label: rows[label], KEYS)
    out = fn(["qa", "qb"], ["p", "p"], ["a", "b"])
    assert out["rewards"].tolist() == [1.0, 7.0] and torch.equal(out["rewards"], out["scores"])
    assert out["extra_logs"]["correct"].tolist() == [1.0, 0.0]
    assert math.isnan(out["extra_logs"]["format"][0]) and out["extra_logs"]["format"][1] == 1.0


def test_tool_calling_reward_file():
    from gdpo_verl_plugins.openrlhf import tool_calling_reward as trf

    from gdpo_verl.rewards import tool_calling

    gold = '<tool_call>\n{"name": "get_time", "parameters": {"tz": "CET"}}\n</tool_call>'
    prompt = "<|im_start|>user\nWhat time is it in Paris?<|im_end|>\n<|im_start|>assistant\n"
    response = '<think>look it up</think>\n<tool_call>\n{"name": "get_time", "parameters": {"tz": "CET"}}\n</tool_call>'
    out = trf.reward_func([prompt + response + "<|im_end|><|endoftext|>"], [prompt], [gold])
    assert out["extra_logs"]["format"].tolist() == [1.0] and out["extra_logs"]["correctness"].tolist() == [3.0]
    verl_row_label = {"style": "rule", "ground_truth": gold}  # --data.label_key reward_model on verl's parquet
    assert trf.reward_func([prompt + response], [prompt], [verl_row_label])["extra_logs"]["correctness"][0] == 3.0
    assert tool_calling.format(response + "<|im_end|>", gold) == 0.0  # why the end-of-turn tokens are cut
    with pytest.raises(ValueError, match="does not start with the prompt"):
        trf.response_text("something else", prompt)


def test_missing_openrlhf_shape_names_version_and_attribute(monkeypatch):
    from gdpo_verl_plugins.openrlhf import shapes
    from openrlhf.trainer.ppo_utils.experience_maker import RemoteExperienceMaker

    monkeypatch.delattr(RemoteExperienceMaker, "get_cumulative_returns")
    with pytest.raises(shapes.OpenRLHFShapeError) as exc:
        shapes.require(shapes.EXPERIENCE_MAKER)
    message = str(exc.value)
    assert "openrlhf 0.11.2" in message
    assert (
        "openrlhf.trainer.ppo_utils.experience_maker.RemoteExperienceMaker.get_cumulative_returns (absent)" in message
    )


def test_setup_hook_added_to_runtime_env_and_a_foreign_hook_refused():
    from gdpo_verl_plugins.openrlhf.train_ppo_ray import with_setup_hook
    from gdpo_verl_plugins.openrlhf.worker_setup import HOOK

    env = with_setup_hook({"env_vars": {"A": "1"}})
    assert env == {"env_vars": {"A": "1"}, "worker_process_setup_hook": HOOK}
    with pytest.raises(ValueError, match="already has worker_process_setup_hook='mine.setup'"):
        with_setup_hook({"worker_process_setup_hook": "mine.setup"})
