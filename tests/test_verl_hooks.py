"""The verl internals our hooks rely on. If verl changes under a hook, one of these fails and names it."""

from __future__ import annotations

import inspect

import pytest

pytest.importorskip("verl")
pytestmark = pytest.mark.verl

from gdpo_verl_plugins import adv_estimator, legacy_trainer, tq_rows, verl_shapes  # noqa: E402


@pytest.mark.parametrize("hook", verl_shapes.HOOKS, ids=lambda h: h.module)
def test_installed_verl_has_every_shape_a_hook_needs(hook):
    import importlib

    assert hook.missing(importlib.import_module(hook.module)) == []
    assert verl_shapes.problem(hook) is None


def test_estimator_registry_holds_ours_and_keeps_the_builtin():
    from verl.trainer.ppo import core_algos

    assert core_algos.ADV_ESTIMATOR_REGISTRY["gdpo"] is adv_estimator.compute_gdpo_outcome_advantage
    assert adv_estimator._builtin["gdpo"].__module__ == "verl.trainer.ppo.core_algos"


def test_legacy_compute_advantage_still_hands_gdpo_the_batch():
    from verl.trainer.ppo import ray_trainer

    src = inspect.getsource(ray_trainer.compute_advantage)
    assert 'adv_kwargs["non_tensor_batch"] = data.non_tensor_batch' in src
    assert 'adv_kwargs["batch"] = data.batch' in src


def test_legacy_fit_computes_the_advantage_and_logs_its_metrics_where_we_hook():
    from verl.trainer.ppo import ray_trainer
    from verl.utils import tracking

    fit = inspect.getsource(ray_trainer.RayPPOTrainer.fit)
    assert "from verl.utils.tracking import Tracking" in fit and "logger = Tracking(" in fit
    # the advantage step (a module global, looked up when called), then the step's one log of its metrics
    assert fit.index("batch = compute_advantage(") < fit.index("logger.log(data=metrics, step=self.global_steps)")
    assert ray_trainer.compute_advantage.__gdpo_verl_patched__ and tracking.Tracking.log.__gdpo_verl_patched__


def test_legacy_step_logs_this_steps_figures_once_and_nothing_stale(monkeypatch):
    from gdpo_verl_plugins import metrics_bridge

    monkeypatch.setattr(legacy_trainer, "_step_figures", {})
    logged = []
    log = legacy_trainer._wrap_log(lambda self, data, step, backend=None: logged.append((step, data)))
    advantage = legacy_trainer._wrap_advantage(metrics_bridge.push)  # stands for verl's step running our estimator
    advantage({"gdpo/a/mean": 1.0, "gdpo/b/mean": 0.5})
    advantage({"gdpo/a/mean": 0.25})  # a later advantage step: the earlier one's figures are gone
    log(None, {"critic/score/mean": 1.0, "gdpo/a/mean": 9.0}, 1)  # ours win where names meet
    log(None, {"val/score": 2.0}, 2)  # nothing of step 1 again
    assert logged == [(1, {"critic/score/mean": 1.0, "gdpo/a/mean": 0.25}), (2, {"val/score": 2.0})]
    with metrics_bridge.collect() as outer:  # inside a V1 / separated hook: that hook takes the figures
        advantage({"gdpo/a/mean": 0.75})
    assert outer == {"gdpo/a/mean": 0.75} and legacy_trainer._step_figures == {}


def test_v1_compute_advantage_shape_we_wrap():
    from verl.trainer.ppo.v1 import trainer_base

    method = trainer_base.PPOTrainer._compute_advantage
    assert method.__gdpo_verl_patched__
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
    assert tq_rows.session_layout(["a_0_0", "a_1_0"]) is None
    final, owner = tq_rows.session_layout(["a_0_0", "a_0_1", "b_0_0"])
    assert final.tolist() == [1, 2] and owner.tolist() == [0, 0, 1]


def test_a_failed_estimator_piece_makes_gdpo_raise_the_load_error_not_run_verls(monkeypatch, caplog):
    from gdpo_verl_plugins import entry
    from verl.trainer.ppo import core_algos

    registry = core_algos.ADV_ESTIMATOR_REGISTRY
    monkeypatch.setitem(registry, "gdpo", registry["gdpo"])  # restored after the test

    def broken_install():
        raise ImportError("libtorch_cpu.so: cannot open shared object file")

    monkeypatch.setattr(adv_estimator, "install", broken_install)
    assert entry.load(entry.ESTIMATOR_PIECE) is False
    fn = core_algos.get_adv_estimator_fn("gdpo")  # what verl's compute_advantage resolves
    assert fn is not adv_estimator._builtin["gdpo"] and fn is not adv_estimator.compute_gdpo_outcome_advantage
    with pytest.raises(entry.PluginLoadError, match="libtorch_cpu.so") as e:
        fn(token_level_rewards=None, response_mask=None, index=None)
    assert "built-in gdpo is not used" in str(e.value) and isinstance(e.value.__cause__, ImportError)
    assert any("failed to load" in r.getMessage() for r in caplog.records)


def test_other_failed_pieces_leave_the_estimator_registered(monkeypatch):
    from gdpo_verl_plugins import entry, reward_manager
    from verl.trainer.ppo import core_algos

    monkeypatch.setattr(reward_manager, "install", lambda: (_ for _ in ()).throw(RuntimeError("no reward loop")))
    assert entry.load(".reward_manager") is False
    assert core_algos.ADV_ESTIMATOR_REGISTRY["gdpo"] is adv_estimator.compute_gdpo_outcome_advantage
