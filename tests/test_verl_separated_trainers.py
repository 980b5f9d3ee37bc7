"""verl's one-step-off and fully-async trainers: their advantage step runs our estimator and logs gdpo/* metrics."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("verl")
pytestmark = pytest.mark.verl

from gdpo_verl_plugins import adv_estimator  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from tensordict import TensorDict  # noqa: E402
from test_verl_integration import algorithm, make_batch  # noqa: E402
from verl import DataProto  # noqa: E402


@pytest.mark.parametrize(
    "path",
    [
        "verl.experimental.one_step_off_policy.ray_trainer:OneStepOffRayTrainer",
        "verl.experimental.fully_async_policy.fully_async_trainer:FullyAsyncTrainer",
    ],
)
def test_advantage_step_logs_gdpo_metrics(path):
    import importlib

    module, name = path.split(":")
    cls = getattr(importlib.import_module(module), name)
    cls = getattr(cls, "__ray_actor_class__", cls)  # the fully-async trainer is a Ray actor class
    mask, comps, uid, rewards = make_batch(seed=11)
    t = object.__new__(cls)  # only what _fit_compute_advantage reads
    t.metrics, t.timing_raw = {"training/global_step": 1}, {}
    t.reward_tensor, t.reward_extra_infos_dict = rewards, {k: v.tolist() for k, v in comps.items()}
    alg = algorithm(gamma=1.0, lam=1.0, use_kl_in_reward=False)
    t.config = OmegaConf.create({"algorithm": alg, "actor_rollout_ref": {"rollout": {"n": 4}}})
    batch = DataProto(batch=TensorDict({"response_mask": mask}, batch_size=[len(uid)]), non_tensor_batch={"uid": uid})
    out = t._fit_compute_advantage(batch)
    expected, _ = adv_estimator.compute_gdpo_outcome_advantage(
        rewards, mask, uid, config=algorithm(), non_tensor_batch=comps
    )
    torch.testing.assert_close(out.batch["advantages"], expected)
    assert t.metrics["gdpo/impl"] == 1.0 and "gdpo/format/mean" in t.metrics and t.metrics["training/global_step"] == 1
