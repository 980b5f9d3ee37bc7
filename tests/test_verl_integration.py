"""Our estimator inside real verl 0.9.1: registration, parity with verl's GRPO and built-in gdpo, both trainer paths."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

pytest.importorskip("verl")
pytestmark = pytest.mark.verl

from gdpo_verl_plugins import adv_estimator, metrics_bridge  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from tensordict import TensorDict  # noqa: E402
from verl import DataProto  # noqa: E402
from verl.trainer.ppo import core_algos  # noqa: E402


def make_batch(n_groups=4, g=4, t=6, keys=("format", "correct"), seed=0, equal_lengths=False):
    gen = torch.Generator().manual_seed(seed)
    b = n_groups * g
    lengths = torch.full((b,), t) if equal_lengths else torch.randint(1, t + 1, (b,), generator=gen)
    mask = (torch.arange(t).unsqueeze(0) < lengths.unsqueeze(1)).float()
    comps = {k: (torch.rand(b, generator=gen) > 0.5).float().numpy() for k in keys}
    uid = np.array([f"u{i // g}" for i in range(b)], dtype=object)
    score = sum(torch.from_numpy(v) for v in comps.values())
    rewards = torch.zeros(b, t)
    rewards[torch.arange(b), lengths - 1] = score
    return mask, comps, uid, rewards


def algorithm(**extra):
    return OmegaConf.create({"adv_estimator": "gdpo", "gdpo_reward_keys": ["format", "correct"], **extra})


def test_import_verl_alone_resolves_gdpo_to_ours_in_a_fresh_process():
    code = textwrap.dedent(
        """
        import verl
        from verl.trainer.ppo import core_algos
        fn = core_algos.get_adv_estimator_fn("gdpo")
        print(fn.__module__ + "." + fn.__name__)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip().splitlines()[-1] == "gdpo_verl_plugins.adv_estimator.compute_gdpo_outcome_advantage"


def test_one_reward_without_batch_step_equals_verl_grpo():
    mask, comps, uid, rewards = make_batch(keys=("score",), g=5)
    grpo, _ = core_algos.compute_grpo_outcome_advantage(rewards, mask, uid)
    cfg = OmegaConf.create({"gdpo_reward_keys": ["score"], "gdpo": {"batch_norm": "none"}})
    ours, _ = adv_estimator.compute_gdpo_outcome_advantage(rewards, mask, uid, config=cfg, non_tensor_batch=comps)
    torch.testing.assert_close(ours, grpo, atol=1e-5, rtol=1e-5)
    no_std = OmegaConf.create({**cfg, "norm_adv_by_std_in_grpo": False})
    grpo_ns, _ = core_algos.compute_grpo_outcome_advantage(rewards, mask, uid, norm_adv_by_std_in_grpo=False)
    ours_ns, _ = adv_estimator.compute_gdpo_outcome_advantage(rewards, mask, uid, config=no_std, non_tensor_batch=comps)
    torch.testing.assert_close(ours_ns, grpo_ns, atol=1e-5, rtol=1e-5)


def test_token_mode_matches_verl_builtin_on_clean_inputs():
    mask, comps, uid, rewards = make_batch(n_groups=6, g=4, t=8, seed=3)
    builtin = adv_estimator._builtin["gdpo"]
    prompts = torch.zeros(mask.shape[0], 3, dtype=torch.long)
    attention = torch.cat([torch.ones(mask.shape[0], 3), mask], dim=1).long()
    batch = {"prompts": prompts, "attention_mask": attention}
    expected, _ = builtin(rewards, mask, uid, config=algorithm(), non_tensor_batch=comps, batch=batch)
    cfg = algorithm(gdpo={"batch_norm": "token"})
    ours, _ = adv_estimator.compute_gdpo_outcome_advantage(rewards, mask, uid, config=cfg, non_tensor_batch=comps)
    torch.testing.assert_close(ours, expected, atol=1e-4, rtol=1e-4)


def test_missing_key_error_lists_present_keys():
    mask, comps, uid, rewards = make_batch()
    cfg = OmegaConf.create({"gdpo_reward_keys": ["format", "length"]})
    with pytest.raises(KeyError, match=r"'length'.*present: \['correct', 'format'\]"):
        adv_estimator.compute_gdpo_outcome_advantage(rewards, mask, uid, config=cfg, non_tensor_batch=comps)


def test_escape_hatch_runs_verl_builtin():
    mask, comps, uid, rewards = make_batch(equal_lengths=True)
    batch = {
        "prompts": torch.zeros(len(uid), 2),
        "attention_mask": torch.cat([torch.ones(len(uid), 2), mask], 1).long(),
    }
    cfg = algorithm(gdpo={"impl": "verl"})
    out, _ = adv_estimator.compute_gdpo_outcome_advantage(
        rewards, mask, uid, config=cfg, non_tensor_batch=comps, batch=batch
    )
    expected, _ = adv_estimator._builtin["gdpo"](rewards, mask, uid, config=cfg, non_tensor_batch=comps, batch=batch)
    torch.testing.assert_close(out, expected)


def legacy_data(mask, comps, uid, rewards):
    batch = TensorDict(
        {"token_level_rewards": rewards, "token_level_scores": rewards.clone(), "response_mask": mask},
        batch_size=[mask.shape[0]],
    )
    return DataProto(batch=batch, non_tensor_batch={"uid": uid, **comps})


def test_legacy_compute_advantage_produces_our_advantages_and_metrics():
    from verl.trainer.ppo import ray_trainer
    from verl.utils.tracking import Tracking

    mask, comps, uid, rewards = make_batch(seed=5)
    out = ray_trainer.compute_advantage(legacy_data(mask, comps, uid, rewards), "gdpo", config=algorithm())
    with metrics_bridge.collect():
        ours, _ = adv_estimator.compute_gdpo_outcome_advantage(
            rewards, mask, uid, config=algorithm(), non_tensor_batch=comps
        )
    torch.testing.assert_close(out.batch["advantages"], ours)
    logged = []

    class Backend:
        def log(self, data, step):
            logged.append(data)

    tracker = object.__new__(Tracking)
    tracker.logger = {"file": Backend()}
    tracker.log(data={"timing_s/step": 1.0}, step=1)  # what fit() does with the step's metrics
    assert logged[0]["timing_s/step"] == 1.0 and logged[0]["gdpo/impl"] == 1.0
    assert "gdpo/format/mean" in logged[0] and "gdpo/correct/adv_share" in logged[0]


def test_legacy_kl_in_reward_changes_advantages():
    from verl.trainer.ppo import ray_trainer

    mask, comps, uid, rewards = make_batch(seed=6)
    data = legacy_data(mask, comps, uid, rewards)
    data.batch["token_level_rewards"] = rewards - 0.3 * mask * torch.rand(mask.shape, generator=torch.Generator())
    plain = ray_trainer.compute_advantage(legacy_data(mask, comps, uid, rewards), "gdpo", config=algorithm())
    kl = ray_trainer.compute_advantage(data, "gdpo", config=algorithm(use_kl_in_reward=True))
    assert not torch.allclose(plain.batch["advantages"], kl.batch["advantages"])


@pytest.mark.parametrize(
    "config",
    [None, OmegaConf.create({"adv_estimator": "gdpo"}), {"adv_estimator": "gdpo", "gdpo_reward_keys": None}],
    ids=["none", "dictconfig", "dict"],
)
def test_no_reward_keys_stops_the_first_advantage_step_with_the_check_message(config):
    from gdpo_verl.config import GDPOConfigError, missing_reward_keys_message

    mask, comps, uid, rewards = make_batch()
    with pytest.raises(GDPOConfigError) as e:
        adv_estimator.compute_gdpo_outcome_advantage(rewards, mask, uid, config=config, non_tensor_batch=comps)
    assert str(e.value) == missing_reward_keys_message()


def test_misspelled_top_level_key_stops_the_step_with_a_suggestion():
    from gdpo_verl.config import GDPOConfigError

    mask, comps, uid, rewards = make_batch()
    cfg = OmegaConf.create({"gdpo_reward_key": ["format", "correct"]})
    with pytest.raises(GDPOConfigError, match="did you mean 'algorithm.gdpo_reward_keys'"):
        adv_estimator.compute_gdpo_outcome_advantage(rewards, mask, uid, config=cfg, non_tensor_batch=comps)


def test_explicit_score_key_reads_token_level_scores():
    """[score] asked for explicitly: one component, the sequence sum of token_level_scores (not the KL-shaped
    token_level_rewards), equal to verl's GRPO without the batch step."""
    mask, _, uid, rewards = make_batch(g=5, seed=7)
    shaped = rewards - 0.2 * mask
    cfg = OmegaConf.create({"gdpo_reward_keys": ["score"], "gdpo": {"batch_norm": "none"}})
    ours, _ = adv_estimator.compute_gdpo_outcome_advantage(
        shaped, mask, uid, config=cfg, non_tensor_batch={"uid": uid}, batch={"token_level_scores": rewards}
    )
    grpo, _ = core_algos.compute_grpo_outcome_advantage(rewards, mask, uid)
    torch.testing.assert_close(ours, grpo, atol=1e-5, rtol=1e-5)


def test_verl_algo_config_dataclass_is_accepted():
    from verl.trainer.config import AlgoConfig

    from gdpo_verl.config import GDPOConfigError, missing_reward_keys_message

    mask, comps, uid, rewards = make_batch(seed=8)
    dc = AlgoConfig(adv_estimator="gdpo", gdpo_reward_keys=["format", "correct"], gdpo_reward_weights=[1.0, 2.0])
    ours, _ = adv_estimator.compute_gdpo_outcome_advantage(rewards, mask, uid, config=dc, non_tensor_batch=comps)
    same = algorithm(gdpo_reward_weights=[1.0, 2.0])
    expected, _ = adv_estimator.compute_gdpo_outcome_advantage(rewards, mask, uid, config=same, non_tensor_batch=comps)
    torch.testing.assert_close(ours, expected)
    with pytest.raises(GDPOConfigError) as e:
        adv_estimator.compute_gdpo_outcome_advantage(
            rewards, mask, uid, config=AlgoConfig(adv_estimator="gdpo"), non_tensor_batch=comps
        )
    assert str(e.value) == missing_reward_keys_message()


def test_steps_log_at_most_one_warning_per_run(monkeypatch, caplog):
    import logging

    monkeypatch.setattr(adv_estimator, "_announced", False)
    mask, comps, uid, rewards = make_batch(seed=9)
    with caplog.at_level(logging.WARNING, logger="gdpo_verl"):
        for _ in range(3):
            with metrics_bridge.collect():
                adv_estimator.compute_gdpo_outcome_advantage(
                    rewards, mask, uid, config=algorithm(), non_tensor_batch=comps
                )
    assert len(caplog.records) == 1 and "runs gdpo_verl's GDPO" in caplog.records[0].getMessage()
