"""A stand-in verl package tree with the shapes our hooks need (or with one of them changed), under any version string.

Put on PYTHONPATH ahead of the installed verl (its metadata too: ``importlib.metadata`` reports the fake version);
its ``__init__`` loads our plugin the way verl does.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

MODULES = {
    "verl/__init__.py": """
        __version__ = "{version}"
        import gdpo_verl_plugins.entry  # what verl's entry-point loader does
    """,
    "verl-{version}.dist-info/METADATA": """
        Metadata-Version: 2.1
        Name: verl
        Version: {version}
    """,
    "verl/trainer/__init__.py": "",
    "verl/trainer/ppo/__init__.py": "",
    "verl/trainer/ppo/core_algos.py": """
        ADV_ESTIMATOR_REGISTRY = {}
    """,
    "verl/trainer/ppo/ray_trainer.py": """
        def compute_advantage(data, adv_estimator, gamma=1.0, lam=1.0, num_repeat=1, config=None):
            return data
    """,
    "verl/utils/__init__.py": "",
    "verl/utils/tracking.py": """
        class Tracking:
            def log(self, data, step, backend=None):
                pass
    """,
    "verl/trainer/ppo/v1/__init__.py": "",
    "verl/trainer/ppo/v1/trainer_base.py": """
        tq = None

        class PPOTrainer:
            def _compute_advantage(self, batch, metrics):
                return batch

            def _log_rollout_data(self, batch, timing_raw, rollout_data_dir):
                pass

            def _dump_generations(self, inputs, outputs, gts, scores, reward_extra_infos_dict, dump_path):
                pass
    """,
    "verl/experimental/__init__.py": "",
    "verl/experimental/reward_loop/__init__.py": "",
    "verl/experimental/reward_loop/reward_manager/__init__.py": """
        from . import base
        _REGISTRY = {}

        def register(name):
            def deco(cls):
                _REGISTRY[name] = cls
                return cls
            return deco

        def get_reward_manager_cls(name):
            if name not in _REGISTRY:
                raise ValueError(name)
            return _REGISTRY[name]
    """,
    "verl/experimental/reward_loop/reward_manager/base.py": """
        class RewardManagerBase:
            def __init__(self, config, tokenizer, compute_score):
                pass
    """,
}


def write_fake_verl(root: Path, version: str, replace: dict[str, str] | None = None) -> Path:
    """The tree under ``root``; ``replace`` maps a module path to other source (a changed shape)."""
    for rel, src in {**MODULES, **(replace or {})}.items():
        path = root / rel.replace("{version}", version)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(src).replace("{version}", version))
    return root
