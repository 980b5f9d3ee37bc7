"""The `verl.plugins` entry point. verl imports this module (never calls it) in every process at `import verl`.

Everything here stays cheap: each piece only arranges to patch verl when verl imports the module concerned. A piece
that fails is reported with a WARNING (verl itself would log a failing plugin at DEBUG only) and the others still load.
If the estimator piece fails, ``algorithm.adv_estimator=gdpo`` resolves to a function that raises with the load error:
verl's built-in ``gdpo`` never runs in its place.
"""

from __future__ import annotations

import importlib
import logging

logger = logging.getLogger("gdpo_verl")

ESTIMATOR_PIECE = ".adv_estimator"  # algorithm.adv_estimator=gdpo -> gdpo_verl (+ trainer hooks)
PIECES = (
    ESTIMATOR_PIECE,
    ".reward_manager",  # reward.reward_manager.name=gdpo_multi
    ".rollout_dump",  # reward components in the V1 trainer's rollout dump, for any estimator
    ".cpu",  # CPU platform, rollout, Megatron-on-CPU adjustments: only with GDPO_VERL_CPU=1
)
ESTIMATOR_MODULE = "verl.trainer.ppo.core_algos"


class PluginLoadError(RuntimeError):
    """A piece of the plugin failed to load; what the user asked of it cannot run."""


def _unavailable_gdpo(error: BaseException):
    def compute_gdpo_outcome_advantage(*args, **kwargs):
        raise PluginLoadError(
            f"gdpo-verl: algorithm.adv_estimator=gdpo cannot run: the plugin's estimator piece failed to load "
            f"({error!r}). verl's built-in gdpo is not used in its place. Fix the error above (gdpo-verl doctor)."
        ) from error

    return compute_gdpo_outcome_advantage


def _register_unavailable(error: BaseException) -> None:
    """Whenever verl imports its estimator registry, ``gdpo`` there raises ``error``."""
    from .post_import import when_imported

    def put(core_algos) -> None:
        core_algos.ADV_ESTIMATOR_REGISTRY["gdpo"] = _unavailable_gdpo(error)

    when_imported(ESTIMATOR_MODULE, put)


def load(name: str) -> bool:
    """Install one piece (a module of this package); a failure is logged (and, for the estimator, makes ``gdpo``
    raise it). Returns whether it loaded."""
    try:
        importlib.import_module(name, __package__).install()
    except Exception as exc:  # noqa: BLE001 - one broken piece must not hide the others
        logger.warning("gdpo-verl: plugin piece %s failed to load: %r", name, exc)
        if name == ESTIMATOR_PIECE:
            _register_unavailable(exc)
        return False
    return True


for _name in PIECES:
    load(_name)
