"""Ray worker setup hook: every process of the run builds ``GDPOExperienceMaker`` where OpenRLHF builds its
``RemoteExperienceMaker`` (``BasePPOTrainer.__init__``, which both the sync ``PPOTrainer`` and the async
``TrainingActor`` run inside their Ray workers).

Cheap in every worker: nothing is imported until OpenRLHF itself imports ``openrlhf.trainer.ppo_trainer``.
"""

from __future__ import annotations

from types import ModuleType

from gdpo_verl_plugins import post_import
from gdpo_verl_plugins.openrlhf import shapes

HOOK = "gdpo_verl_plugins.openrlhf.worker_setup.install"  # Ray's runtime_env worker_process_setup_hook


def _swap(trainer_module: ModuleType) -> None:
    shapes.require(shapes.TRAINER)
    from gdpo_verl_plugins.openrlhf.experience_maker import GDPOExperienceMaker

    trainer_module.RemoteExperienceMaker = GDPOExperienceMaker


def install() -> None:
    post_import.when_imported(shapes.TRAINER, _swap)
