"""An older verl (0.8.0, legacy trainer only) loading the plugin through VERL_USE_EXTERNAL_MODULES.

Runs when GDPO_VERL_OLD_VERL points at an unpacked verl wheel (``.ci/run`` prepares one); skipped otherwise.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.verl
OLD = os.environ.get("GDPO_VERL_OLD_VERL")

SCRIPT = textwrap.dedent(
    """
    import numpy as np, torch
    from omegaconf import OmegaConf
    from tensordict import TensorDict
    import verl
    from verl import DataProto
    from verl.trainer.ppo import ray_trainer
    from gdpo_verl.config import GDPOConfig
    from gdpo_verl.estimator import compute_gdpo

    comps = {"format": np.array([1, 0, 1, 1, 0, 1.0]), "correct": np.array([0, 0, 1, 1, None, 0], dtype=object)}
    uid = np.array(["a", "a", "a", "b", "b", "b"], dtype=object)
    mask = torch.ones(6, 3)
    batch = TensorDict({"token_level_rewards": torch.zeros(6, 3), "response_mask": mask}, batch_size=[6])
    data = DataProto(batch=batch, non_tensor_batch={"uid": uid, **comps})
    alg = OmegaConf.create({"adv_estimator": "gdpo", "gdpo_reward_keys": ["format", "correct"]})
    out = ray_trainer.compute_advantage(data, "gdpo", config=alg)
    stacked = torch.tensor([[1, 0], [0, 0], [1, 1], [1, 1], [0, float("nan")], [1, 0]], dtype=torch.float64)
    expected, _ = compute_gdpo(stacked, list(uid), torch.ones(6), GDPOConfig.from_algorithm(alg))
    assert torch.allclose(out.batch["advantages"][:, 0].double(), expected, atol=1e-6), out.batch["advantages"]
    assert ray_trainer.compute_advantage.__gdpo_verl_patched__
    print("OK", verl.__version__)
    """
)


@pytest.mark.skipif(not OLD, reason="set GDPO_VERL_OLD_VERL to an unpacked older verl wheel")
def test_legacy_trainer_on_older_verl_via_external_modules():
    env = {**os.environ, "PYTHONPATH": OLD, "VERL_USE_EXTERNAL_MODULES": "gdpo_verl_plugins.entry"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    assert out.stdout.strip().splitlines()[-1].startswith("OK 0.")
    assert not out.stdout.strip().splitlines()[-1].startswith("OK 0.9"), "the older verl was not the one imported"
