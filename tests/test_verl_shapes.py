"""One guard for every hook: verl's shapes, not its version string, decide whether a hook applies; a missing shape
is named (with the verl version) and a gdpo run stops instead of silently running something else."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest
from fake_verl import write_fake_verl
from gdpo_verl_plugins import verl_shapes
from gdpo_verl_plugins.cpu import guard as cpu_guard
from gdpo_verl_plugins.verl_shapes import Hook, Shape

PROBE = textwrap.dedent(
    """
    import json, logging
    logging.basicConfig(level=logging.WARNING)
    import verl
    from verl.trainer.ppo import core_algos, ray_trainer
    from verl.trainer.ppo.v1 import trainer_base
    from verl.utils import tracking
    import verl.experimental.reward_loop.reward_manager as rm
    from gdpo_verl_plugins import verl_shapes
    fn = core_algos.ADV_ESTIMATOR_REGISTRY.get("gdpo")
    print(json.dumps({
        "version": verl.__version__,
        "estimator": fn and fn.__module__,
        "v1": getattr(trainer_base.PPOTrainer._compute_advantage, "__gdpo_verl_patched__", False),
        "legacy": getattr(ray_trainer.compute_advantage, "__gdpo_verl_patched__", False)
        and getattr(tracking.Tracking.log, "__gdpo_verl_patched__", False),
        "manager": "gdpo_multi" in rm._REGISTRY,
        "problems": verl_shapes.problems(),
    }))
    """
)


def run_fake(root: Path, code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("GDPO_VERL_CPU", None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)


def probe(root: Path) -> dict:
    import json

    out = run_fake(root, PROBE)
    assert out.returncode == 0, out.stderr[-3000:]
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "stderr": out.stderr}


def test_other_version_string_with_the_right_shapes_is_hooked(tmp_path):
    found = probe(write_fake_verl(tmp_path, "0.99.0.dev0+fork"))
    assert found["version"] == "0.99.0.dev0+fork"
    assert found["estimator"] == "gdpo_verl_plugins.adv_estimator"
    assert found["v1"] and found["legacy"] and found["manager"]
    assert found["problems"] == {}, found["problems"]


def test_missing_registry_is_named_and_gdpo_is_not_registered(tmp_path):
    root = write_fake_verl(tmp_path, "0.9.2", {"verl/trainer/ppo/core_algos.py": "ESTIMATORS = {}\n"})
    out = run_fake(root, "import verl\nfrom verl.trainer.ppo import core_algos\n")
    assert out.returncode == 0, out.stderr[-3000:]
    assert (
        "the gdpo estimator registration (algorithm.adv_estimator=gdpo) is not applied: verl 0.9.2 lacks "
        "verl.trainer.ppo.core_algos.ADV_ESTIMATOR_REGISTRY (absent)"
    ) in out.stderr


V1_CHANGED = """
    tq = None

    class PPOTrainer:
        def _compute_advantage(self, data, metrics):
            return data
"""

STEP_ON_V1 = textwrap.dedent(
    """
    import numpy as np, torch
    import verl
    from verl.trainer.ppo.v1 import trainer_base
    from gdpo_verl_plugins.adv_estimator import compute_gdpo_outcome_advantage
    mask = torch.ones(4, 3)
    uid = np.array(["a", "a", "b", "b"], dtype=object)
    compute_gdpo_outcome_advantage(
        torch.zeros(4, 3), mask, uid, config={"gdpo_reward_keys": ["format", "correct"]}, non_tensor_batch={"uid": uid}
    )
    """
)


def test_changed_v1_step_stops_a_gdpo_step_naming_the_piece_and_version(tmp_path):
    root = write_fake_verl(tmp_path, "0.9.2", {"verl/trainer/ppo/v1/trainer_base.py": V1_CHANGED})
    out = run_fake(root, STEP_ON_V1)
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("gdpo_verl_plugins.verl_shapes.VerlShapeError: gdpo-verl: adv_estimator=gdpo cannot get")
    assert (
        "verl 0.9.2 lacks verl.trainer.ppo.v1.trainer_base.PPOTrainer._compute_advantage(self, data, metrics) "
        "(expected parameters self, batch, metrics)"
    ) in last


@pytest.mark.skipif(importlib.util.find_spec("verl") is None, reason="doctor reads the installed verl's metadata")
def test_doctor_exits_1_naming_a_missing_shape(tmp_path):
    root = write_fake_verl(tmp_path, "0.9.2", {"verl/trainer/ppo/core_algos.py": "ESTIMATORS = {}\n"})
    out = run_fake(root, "import sys\nfrom gdpo_verl.cli import main\nsys.exit(main(['doctor']))\n")
    assert out.returncode == 1, out.stdout + out.stderr[-2000:]
    assert "PROBLEM: the gdpo estimator registration" in out.stdout
    assert "ADV_ESTIMATOR_REGISTRY (absent)" in out.stdout


def _module(name: str, **attrs) -> ModuleType:
    module = ModuleType(name)
    module.__dict__.update(attrs)
    return module


def test_shape_problems_name_the_piece():
    class Trainer:
        def step(self, batch, metrics):
            pass

    module = _module("m", Trainer=Trainer, REG={}, NOT_A_MAP=[1])
    assert Shape("Trainer.step", params=("self", "batch")).problem(module) is None
    assert Shape("Trainer.step", params=("self", "data")).problem(module) == (
        "m.Trainer.step(self, batch, metrics) (expected parameters self, data)"
    )
    assert Shape("Trainer.gone").problem(module) == "m.Trainer.gone (absent)"
    assert Shape("REG", mapping=True).problem(module) is None
    assert Shape("NOT_A_MAP", mapping=True).problem(module) == "m.NOT_A_MAP (not a mapping: list)"
    assert Shape("REG", params=()).problem(module) == "m.REG (not callable)"


def test_applies_warns_once_and_records_the_problem(caplog, monkeypatch):
    monkeypatch.setattr(verl_shapes, "_problems", {})
    monkeypatch.setattr(verl_shapes, "verl_version", lambda: "1.2.3")
    hook = Hook("a test hook", "m", (Shape("missing"),))
    with caplog.at_level("WARNING", logger="gdpo_verl"):
        assert not verl_shapes.applies(hook, _module("m"))
        assert not verl_shapes.applies(hook, _module("m"))
    assert [r.getMessage() for r in caplog.records] == [
        "gdpo-verl: a test hook is not applied: verl 1.2.3 lacks m.missing (absent)"
    ]
    assert verl_shapes.problem(hook) == "a test hook is not applied: verl 1.2.3 lacks m.missing (absent)"
    with pytest.raises(verl_shapes.VerlShapeError, match="lacks m.missing"):
        verl_shapes.require(hook, _module("m"))
    assert verl_shapes.applies(hook, _module("m", missing=1)) and verl_shapes.problem(hook) is None


def test_cpu_hooks_cover_every_patched_attribute():
    from gdpo_verl_plugins.cpu.patches import PATCHES

    covered = {(h.module, s.attr) for h in cpu_guard.cpu_hooks() for s in h.shapes}
    assert set(PATCHES.values()) <= covered


def test_cpu_mode_asked_for_stops_at_a_missing_patched_attribute(tmp_path):
    root = write_fake_verl(tmp_path, "0.9.2", {"verl/workers/__init__.py": "", "verl/workers/rollout/__init__.py": ""})
    (root / "verl/workers/rollout/base.py").write_text("ROLLOUTS = {}\n")
    code = "import os\nos.environ['GDPO_VERL_CPU'] = '1'\nimport verl\nimport verl.workers.rollout.base\n"
    out = run_fake(root, code)
    assert out.returncode != 0
    assert out.stderr.strip().splitlines()[-1] == (
        "gdpo_verl_plugins.verl_shapes.VerlShapeError: gdpo-verl: CPU training's patch of verl.workers.rollout.base "
        "is not applied: verl 0.9.2 lacks verl.workers.rollout.base._ROLLOUT_REGISTRY (absent)"
    )
