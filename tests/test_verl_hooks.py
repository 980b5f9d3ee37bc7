"""The verl internals our hooks rely on. If verl changes under a hook, one of these fails and names it."""

from __future__ import annotations

import inspect
import logging

import pytest

pytest.importorskip("verl")
pytestmark = pytest.mark.verl

from gdpo_verl_plugins import adv_estimator, legacy_trainer, v1_trainer, verl_compat  # noqa: E402


def test_installed_verl_is_supported():
    assert verl_compat.verl_version() in verl_compat.SUPPORTED_VERL


def test_estimator_registry_holds_ours_and_keeps_the_builtin():
    from verl.trainer.ppo import core_algos

    assert core_algos.ADV_ESTIMATOR_REGISTRY["gdpo"] is adv_estimator.compute_gdpo_outcome_advantage
    assert adv_estimator._builtin["gdpo"].__module__ == "verl.trainer.ppo.core_algos"


def test_legacy_compute_advantage_still_hands_gdpo_the_batch():
    from verl.trainer.ppo import ray_trainer

    src = inspect.getsource(ray_trainer.compute_advantage)
    assert 'adv_kwargs["non_tensor_batch"] = data.non_tensor_batch' in src
    assert 'adv_kwargs["batch"] = data.batch' in src


def test_legacy_fit_logs_timing_metrics_after_its_gdpo_loop():
    from verl.trainer.ppo import ray_trainer

    fit = inspect.getsource(ray_trainer.RayPPOTrainer.fit)
    assert f"metrics.update({legacy_trainer.HOOKED}(" in fit
    assert fit.index('metrics[f"gdpo/{key}/mean"]') < fit.index(f"metrics.update({legacy_trainer.HOOKED}(")
    assert getattr(ray_trainer, legacy_trainer.HOOKED).__gdpo_verl_wrapped__


def test_v1_compute_advantage_shape_we_wrap():
    from verl.trainer.ppo.v1 import trainer_base

    method = trainer_base.PPOTrainer._compute_advantage
    assert method.__gdpo_verl_wrapped__
    original = method.__wrapped__
    assert list(inspect.signature(original).parameters) == ["self", "batch", "metrics"]
    src = inspect.getsource(original)
    assert "tq.kv_batch_get(" in src and "compute_advantage_for_multi_trajectories(" in src
    assert hasattr(trainer_base, "tq")


def test_v1_agent_loop_still_stores_reward_extra_info_in_extra_fields():
    from verl.trainer.ppo.v1 import agent_loop_tq

    src = inspect.getsource(agent_loop_tq)
    assert 'extra_fields["reward_extra_info"]' in src and 'keys.append(f"{uid}_{session_id}_{i}")' in src


def test_session_layout():
    assert v1_trainer.session_layout(["a_0_0", "a_1_0"]) is None
    final, owner = v1_trainer.session_layout(["a_0_0", "a_0_1", "b_0_0"])
    assert final.tolist() == [1, 2] and owner.tolist() == [0, 0, 1]


def test_unsupported_version_warns_and_skips(monkeypatch, caplog):
    monkeypatch.setattr(verl_compat, "verl_version", lambda: "0.10.0")
    with caplog.at_level(logging.WARNING, logger="gdpo_verl"):
        assert not verl_compat.supported("a hook")
    assert "written for verl 0.9.0 / 0.9.1, found 0.10.0" in caplog.text
